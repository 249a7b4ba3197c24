"""Registry API for native version 5 and 6 repositories, through both the fast path and Flask."""

from __future__ import annotations

import hashlib
import json

import pytest

from pulp_fedora_mirror.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

from .builder import MASTER, MIRROR, Native

API = ("Docker-Distribution-API-Version", "registry/2.0")
REPO = "/v2/fedora/busybox"
ALL_TYPES = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_LIST, OCI_INDEX])


def body_of(native: Native, digest: str) -> bytes:
    return native.manifests[digest]["body"].encode()


def assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers.get(API[0]) == API[1]
    if resp.request.method == "HEAD":
        assert resp.data == b""
        return
    assert resp.json["errors"][0]["code"] == code
    assert "message" in resp.json["errors"][0] and "detail" in resp.json["errors"][0]


# -- base --------------------------------------------------------------------------------------
def test_base_endpoint(client):
    for method in ("get", "head"):
        r = getattr(client, method)("/v2/")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers.get(API[0]) == API[1]
    assert client.get("/v2/").data == b"{}"


def test_v2_without_slash_redirects(client):
    r = client.get("/v2")
    assert 300 <= r.status_code < 400
    assert r.headers["Location"].endswith("/v2/")
    assert r.headers.get(API[0]) == API[1]


# -- manifests ---------------------------------------------------------------------------------
def test_manifest_by_tag_exact_bytes_and_headers(client, repo):
    native, d = repo
    r = client.get(f"{REPO}/manifests/latest", headers={"Accept": ALL_TYPES})
    assert r.status_code == 200
    assert r.data == body_of(native, d["index"])
    assert r.headers["Content-Type"] == OCI_INDEX
    assert r.headers["Docker-Content-Digest"] == d["index"]
    assert "sha256:" + hashlib.sha256(r.data).hexdigest() == d["index"]
    assert r.headers["Content-Length"] == str(len(r.data))
    assert r.headers["ETag"] == f'"{d["index"]}"'
    assert r.headers.get(API[0]) == API[1]


def test_manifest_head_matches_get_without_body(client, repo):
    native, d = repo
    r = client.head(f"{REPO}/manifests/latest", headers={"Accept": ALL_TYPES})
    assert r.status_code == 200
    assert r.data == b""
    assert r.headers["Content-Length"] == str(len(body_of(native, d["index"])))
    assert r.headers["Docker-Content-Digest"] == d["index"]
    assert r.headers["Content-Type"] == OCI_INDEX


def test_manifest_by_digest(client, repo):
    native, d = repo
    r = client.get(f"{REPO}/manifests/{d['arm64']}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.data == body_of(native, d["arm64"])
    assert r.headers["Docker-Content-Digest"] == d["arm64"]


def test_if_none_match_gives_304(client, repo):
    _, d = repo
    r = client.get(f"{REPO}/manifests/single", headers={"If-None-Match": f'"{d["single"]}"'})
    assert r.status_code == 304
    assert r.data == b""
    assert r.headers["Docker-Content-Digest"] == d["single"]
    r = client.get(f"{REPO}/manifests/single", headers={"If-None-Match": '"sha256:other"'})
    assert r.status_code == 200


def test_missing_accept_means_anything(client, repo):
    _, d = repo
    r = client.get(f"{REPO}/manifests/latest")
    assert r.headers["Docker-Content-Digest"] == d["index"]
    assert r.headers["Content-Type"] == OCI_INDEX


def test_star_accept_serves_stored_type(client, repo):
    _, d = repo
    r = client.get(f"{REPO}/manifests/dockerlist", headers={"Accept": "*/*"})
    assert r.headers["Content-Type"] == DOCKER_LIST
    assert r.headers["Docker-Content-Digest"] == d["list"]


def test_client_without_list_type_gets_default_platform_child(client, repo):
    native, d = repo
    r = client.get(f"{REPO}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == d["amd64"]
    assert r.data == body_of(native, d["amd64"])
    r = client.get(f"{REPO}/manifests/dockerlist", headers={"Accept": DOCKER_MANIFEST})
    assert r.headers["Docker-Content-Digest"] == d["d_amd64"]
    assert r.headers["Content-Type"] == DOCKER_MANIFEST


def test_child_type_not_accepted_gives_manifest_unknown(client):
    # Docker list whose amd64 child is a Docker manifest; client takes OCI manifests only
    r = client.get(f"{REPO}/manifests/dockerlist", headers={"Accept": OCI_MANIFEST})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_list_without_default_platform_child(client):
    r = client.get(f"{REPO}/manifests/noamd64", headers={"Accept": OCI_MANIFEST})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_by_digest_list_never_substituted(client, repo):
    _, d = repo
    r = client.get(f"{REPO}/manifests/{d['index']}", headers={"Accept": OCI_MANIFEST})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_q_values(client, repo):
    _, d = repo
    # child preferred by q
    r = client.get(f"{REPO}/manifests/latest", headers={"Accept": f"{OCI_INDEX};q=0.2, {OCI_MANIFEST};q=0.9"})
    assert r.headers["Docker-Content-Digest"] == d["amd64"]
    # equal q: the stored type wins
    r = client.get(f"{REPO}/manifests/latest", headers={"Accept": f"{OCI_INDEX};q=0.5, {OCI_MANIFEST};q=0.5"})
    assert r.headers["Docker-Content-Digest"] == d["index"]
    # q=0 refuses a type
    r = client.get(f"{REPO}/manifests/single", headers={"Accept": f"{DOCKER_MANIFEST};q=0, */*;q=0.1"})
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    # wildcard with lower q still accepts
    r = client.get(f"{REPO}/manifests/single", headers={"Accept": f"{OCI_MANIFEST}, application/*;q=0.1"})
    assert r.status_code == 200


def test_repeated_accept_lines_are_merged(client, repo):
    _, d = repo
    r = client.get(f"{REPO}/manifests/latest", headers=[("Accept", OCI_MANIFEST), ("Accept", OCI_INDEX)])
    assert r.headers["Docker-Content-Digest"] == d["index"]


def test_near_miss_accept_is_not_a_match(client):
    r = client.get(f"{REPO}/manifests/single", headers={"Accept": DOCKER_MANIFEST + "junk"})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_application_json_only_gets_404(client):
    r = client.get(f"{REPO}/manifests/single", headers={"Accept": "application/json"})
    assert_error(r, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("tag", ["blobs", "manifests", "tags"])
def test_keyword_named_tags_work(client, repo, tag):
    native, d = repo
    r = client.get(f"{REPO}/manifests/{tag}")
    assert r.status_code == 200
    assert r.data == body_of(native, d["single"])


def test_unknown_tag_and_digest(client):
    assert_error(client.get(f"{REPO}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"{REPO}/manifests/sha256:" + "0" * 64), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"{REPO}/manifests/sha512:" + "0" * 128), 404, "MANIFEST_UNKNOWN")


def test_invalid_references(client):
    assert_error(client.get(f"{REPO}/manifests/sha256:XYZ!"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("method", ["get", "head"])
@pytest.mark.parametrize("ref", [".INVALID", ".bad", "a" * 129, "-dash", "a%20b"])
def test_reference_that_cannot_be_a_tag_is_unknown(client, method, ref):
    # issue 13 item 10: the distribution spec lists only 200/404 for manifest GET/HEAD and
    # Distribution answers 404 MANIFEST_UNKNOWN for a tag that cannot exist (was 400 TAG_INVALID)
    assert_error(getattr(client, method)(f"{REPO}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("area", ["manifests", "blobs"])
@pytest.mark.parametrize(
    "ref", ["sha256:zz", "sha256:" + "A" * 64, "sha256:" + "0" * 63, "sha512:zz", "sha512:" + "0" * 64]
)
def test_malformed_registered_digest_is_invalid(client, area, ref):
    # issue 13 item 9: sha256 and sha512 (the registered algorithms) have a fixed syntax
    assert_error(client.get(f"{REPO}/{area}/{ref}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("area,code", [("manifests", "MANIFEST_UNKNOWN"), ("blobs", "BLOB_UNKNOWN")])
def test_unregistered_algorithm_is_unknown(client, area, code):
    assert_error(client.get(f"{REPO}/{area}/sha384:" + "0" * 96), 404, code)
    assert_error(client.get(f"{REPO}/{area}/blake3:" + "a" * 64), 404, code)


def test_manifest_path_without_ref_or_with_extra_components(client):
    # Crane gave 500 here; now 404 JSON
    assert_error(client.get(f"{REPO}/manifests"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"{REPO}/manifests/"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"{REPO}/manifests/a/b"), 404, "NAME_UNKNOWN")


# -- names -------------------------------------------------------------------------------------
def test_unknown_and_invalid_names(client):
    assert_error(client.get("/v2/fedora/nothere/manifests/latest"), 404, "NAME_UNKNOWN")
    assert_error(client.get("/v2/Fedora/BusyBox/manifests/latest"), 400, "NAME_INVALID")
    assert_error(client.get("/v2//busybox/manifests/latest"), 400, "NAME_INVALID")
    assert_error(client.get("/v2/" + "a" * 256 + "/manifests/latest"), 400, "NAME_INVALID")
    # no keyword at all (Crane checklist): 404 JSON
    assert_error(client.get("/v2/no/name/test"), 404, "NAME_UNKNOWN")
    assert_error(client.get("/v2/foo/test"), 404, "NAME_UNKNOWN")


def test_library_prefix_not_stripped(client):
    assert_error(client.get("/v2/library/fedora/busybox/manifests/latest"), 404, "NAME_UNKNOWN")


# -- blobs -------------------------------------------------------------------------------------
def blob_url(base: str, digest: str) -> str:
    hexpart = digest.split(":")[1]
    return f"{base}blobs/sha256/{hexpart[:2]}/{hexpart}"


def test_settled_blob_goes_to_mirror(client, repo):
    native, d = repo
    cfg = native.manifests[d["amd64"]]["blobs"][0]
    r = client.get(f"{REPO}/blobs/{cfg}")
    assert r.status_code == 302
    assert r.headers["Location"] == blob_url(MIRROR, cfg)
    assert r.headers.get(API[0]) == API[1]


def test_fresh_blob_goes_to_master(client, repo):
    native, d = repo
    layer = native.manifests[d["fresh"]]["blobs"][1]
    r = client.get(f"{REPO}/blobs/{layer}")
    assert r.headers["Location"] == blob_url(MASTER, layer)


def test_settle_zero_sends_everything_to_mirror(make_app, repo):
    native, d = repo
    client = make_app("[mirrors]\nsettle_seconds = 0\n").test_client()
    layer = native.manifests[d["fresh"]]["blobs"][1]
    # published in the far future is still not settled with settle 0 ... unless now >= published
    r = client.get(f"{REPO}/blobs/{layer}")
    assert r.headers["Location"] == blob_url(MASTER, layer)
    cfg = native.manifests[d["amd64"]]["blobs"][0]
    assert client.get(f"{REPO}/blobs/{cfg}").headers["Location"] == blob_url(MIRROR, cfg)


def test_settle_window_boundary(make_app, data_dir):
    import time

    native = Native("a/b")
    native.tag("x", native.image("x", published=int(time.time()) - 100))
    native.write(data_dir)
    cfg = next(iter(native.blobs))
    c1 = make_app("[mirrors]\nsettle_seconds = 50\n").test_client()
    assert c1.get(f"/v2/a/b/blobs/{cfg}").headers["Location"].startswith(MIRROR)
    c2 = make_app("[mirrors]\nsettle_seconds = 1000\n").test_client()
    assert c2.get(f"/v2/a/b/blobs/{cfg}").headers["Location"].startswith(MASTER)


def test_no_mirror_means_master(make_app, data_dir):
    native = Native("a/nomirror", mirror=None)
    native.tag("x", native.image("x"))
    native.write(data_dir)
    client = make_app("[mirrors]\nsettle_seconds = 0\n").test_client()
    cfg = next(iter(native.blobs))
    assert client.get(f"/v2/a/nomirror/blobs/{cfg}").headers["Location"] == blob_url(MASTER, cfg)


def test_blob_head_is_local(client, repo):
    native, d = repo
    cfg = native.manifests[d["amd64"]]["blobs"][0]
    r = client.head(f"{REPO}/blobs/{cfg}")
    assert r.status_code == 200
    assert "Location" not in r.headers
    assert r.headers["Content-Length"] == str(native.blobs[cfg]["size"])
    assert r.headers["Docker-Content-Digest"] == cfg
    assert r.headers["Content-Type"] == "application/octet-stream"


def test_manifest_digest_under_blobs(client, repo):
    native, d = repo
    r = client.get(f"{REPO}/blobs/{d['amd64']}")
    assert r.status_code == 200
    assert r.data == body_of(native, d["amd64"])
    assert r.headers["Docker-Content-Digest"] == d["amd64"]
    r = client.head(f"{REPO}/blobs/{d['amd64']}")
    assert r.headers["Content-Length"] == str(len(body_of(native, d["amd64"])))


def test_blob_not_in_this_repo(client, repo, data_dir, app):
    other = Native("other/repo")
    other.tag("x", other.image("x"))
    other.write(data_dir)
    from .conftest import refresh

    refresh(app)
    foreign = next(iter(other.blobs))
    assert client.get(f"/v2/other/repo/blobs/{foreign}").status_code == 302
    assert_error(client.get(f"{REPO}/blobs/{foreign}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"{REPO}/blobs/{foreign}"), 404, "BLOB_UNKNOWN")


def test_blob_digest_validation(client):
    assert_error(client.get(f"{REPO}/blobs/sha256:abc"), 400, "DIGEST_INVALID")
    assert_error(client.get(f"{REPO}/blobs/latest"), 400, "DIGEST_INVALID")
    assert_error(client.get(f"{REPO}/blobs/sha512:" + "a" * 128), 404, "BLOB_UNKNOWN")
    assert_error(client.get(f"{REPO}/blobs/sha256:" + "a" * 64), 404, "BLOB_UNKNOWN")


def test_cdn_rewrite_and_token_on_blob(make_app, repo):
    native, d = repo
    client = make_app(
        "[cdn]\nurl_match = download.example.org\nurl_replace = cdn.example.net\n"
        "url_auth_secret = abc123\nurl_auth_ttl = 600\n"
    ).test_client()
    cfg = native.manifests[d["amd64"]]["blobs"][0]
    loc = client.get(f"{REPO}/blobs/{cfg}").headers["Location"]
    assert loc.startswith("https://cdn.example.net/pub/containers/blobs/sha256/")
    assert "?_auth_=exp=" in loc and "~hmac=" in loc


# -- tags/list and catalog ---------------------------------------------------------------------
def test_tags_list_all(client, repo):
    native, _ = repo
    r = client.get(f"{REPO}/tags/list")
    assert r.status_code == 200
    assert r.json == {"name": "fedora/busybox", "tags": sorted(native.tags)}
    assert "Link" not in r.headers
    assert r.headers.get(API[0]) == API[1]


def test_tags_list_pagination(client, repo):
    native, _ = repo
    expected = sorted(native.tags)
    got: list[str] = []
    url = f"{REPO}/tags/list?n=2"
    pages = 0
    while url:
        r = client.get(url)
        assert r.status_code == 200
        got += r.json["tags"]
        pages += 1
        link = r.headers.get("Link")
        if link:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert url.startswith(f"{REPO}/tags/list?n=2&last=")
        else:
            url = ""
    assert got == expected
    assert pages == (len(expected) + 1) // 2


def test_tags_list_last_and_edge_cases(client, repo):
    native, _ = repo
    expected = sorted(native.tags)
    r = client.get(f"{REPO}/tags/list?last={expected[2]}")
    assert r.json["tags"] == expected[3:]
    assert client.get(f"{REPO}/tags/list?n=0").json["tags"] == []
    assert client.get(f"{REPO}/tags/list?last=zzzz").json["tags"] == []
    assert_error(client.get(f"{REPO}/tags/list?n=-1"), 400, "PAGINATION_NUMBER_INVALID")
    assert_error(client.get(f"{REPO}/tags/list?n=abc"), 400, "PAGINATION_NUMBER_INVALID")
    assert_error(
        client.get(f"{REPO}/tags/list?n=\u0661"), 400, "PAGINATION_NUMBER_INVALID"
    )  # non-ASCII digit
    huge = client.get(f"{REPO}/tags/list?n=" + "9" * 6000)
    assert huge.status_code == 200 and len(huge.json["tags"]) == len(expected)
    assert_error(client.get(f"{REPO}/tags/other"), 404, "NAME_UNKNOWN")


def test_page_size_max_caps_n(make_app, repo):
    client = make_app("[registry]\npage_size_max = 3\n").test_client()
    r = client.get(f"{REPO}/tags/list?n=100")
    assert len(r.json["tags"]) == 3
    assert "n=3&last=" in r.headers["Link"]


def test_catalog(client):
    r = client.get("/v2/_catalog")
    assert r.status_code == 200
    names = r.json["repositories"]
    assert names == sorted(names)
    assert "fedora/busybox" in names and "legacy/hello" in names
    assert "secret/pulp2" not in names  # protected: hidden from anonymous clients
    r = client.get("/v2/_catalog?n=1")
    assert r.json["repositories"] == names[:1]
    assert r.headers["Link"] == f'</v2/_catalog?n=1&last={names[0].replace("/", "%2F")}>; rel="next"'
    r = client.get(f"/v2/_catalog?n=10&last={names[0]}")
    assert r.json["repositories"] == names[1:]


def test_catalog_can_be_disabled(make_app, repo):
    client = make_app("[registry]\ncatalog = off\n").test_client()
    assert_error(client.get("/v2/_catalog"), 404, "NAME_UNKNOWN")


# -- methods -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_write_methods_unsupported(client, method):
    for path in ("/v2/", f"{REPO}/manifests/latest", f"{REPO}/blobs/uploads/", "/v2/_catalog"):
        r = client.open(path, method=method)
        assert_error(r, 405, "UNSUPPORTED")
        assert "GET" in r.headers["Allow"] and "HEAD" in r.headers["Allow"]


def test_options(client):
    r = client.options(f"{REPO}/manifests/latest")
    assert r.status_code == 200
    assert "GET" in r.headers["Allow"]


def test_error_body_shape(client):
    r = client.get("/v2/fedora/nothere/tags/list")
    doc = json.loads(r.data)
    assert set(doc) == {"errors"}
    assert set(doc["errors"][0]) == {"code", "message", "detail"}


def test_single_component_name(make_app, data_dir):
    n = Native("busybox")
    n.tag("latest", n.image("1"))
    n.write(data_dir)
    client = make_app().test_client()
    assert client.get("/v2/busybox/manifests/latest").status_code == 200
    assert client.get("/v2/busybox/tags/list").json == {"name": "busybox", "tags": ["latest"]}
