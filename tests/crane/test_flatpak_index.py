"""``/index/static`` and ``/index/dynamic``: flatpak's registry index from version-6 metadata."""

from __future__ import annotations

import gzip
import json
import random
import string

import pytest

from crane_fedora.config import ConfigError, parse_config

from .builder import Native, busybox
from .conftest import refresh

DN = "CN=builder.example.org,O=Fedora Project"
#: exactly what flatpak 1.14 sends (flatpak-oci-registry.c), key percent-encoded
COMMON = "/index/static?label%3Aorg.flatpak.ref%3Aexists=1&architecture=amd64&os=linux&tag=latest"
APP_REF = "app/org.test.Hello/x86_64/master"
RT_REF = "runtime/org.test.Platform/x86_64/master"


class Native6(Native):
    """A version-6 repository: images carry platform, labels and annotations."""

    def facts(self, digest: str, arch: str = "amd64", labels=None, annotations=None) -> str:
        entry = self.manifests[digest]
        entry["platform"] = {"os": "linux", "architecture": arch}
        if labels:
            entry["labels"] = labels
        if annotations:
            entry["annotations"] = annotations
        return digest

    def doc(self) -> dict:
        return {**super().doc(), "version": 6}


def flatpak(ref: str) -> dict[str, str]:
    return {"org.flatpak.ref": ref, "org.flatpak.metadata": f"[Application]\nname={ref.split('/')[1]}\n"}


@pytest.fixture
def world(data_dir):
    """fedora/hello (app, tagged latest + 1.0), fedora/platform (runtime, list with amd64+arm64),
    fedora/plain (a container, no flatpak label), secret/app (protected flatpak), plus the
    standard version-5 busybox (no facts at all)."""
    d = {}
    app = Native6("fedora/hello")
    d["app"] = app.facts(app.image("app"), labels=flatpak(APP_REF), annotations={"org.example.a": "x"})
    d["app_old"] = app.facts(app.image("old"), labels=flatpak(APP_REF))
    app.tag("latest", d["app"]).tag("1.0", d["app"]).tag("0.9", d["app_old"])
    app.write(data_dir)
    rt = Native6("fedora/platform")
    d["rt_amd"] = rt.facts(rt.image("amd"), labels=flatpak(RT_REF))
    d["rt_arm"] = rt.facts(rt.image("arm"), "arm64", labels=flatpak(RT_REF.replace("x86_64", "aarch64")))
    d["rt_list"] = rt.index([(d["rt_amd"], "amd64", None), (d["rt_arm"], "arm64", "v8")])
    rt.tag("latest", d["rt_list"])
    rt.write(data_dir)
    plain = Native6("fedora/plain")
    d["plain"] = plain.facts(plain.image("p"), labels={"maintainer": "me"})
    plain.tag("latest", d["plain"])
    plain.write(data_dir)
    sec = Native6("secret/app", protected=True)
    d["secret"] = sec.facts(sec.image("s"), labels=flatpak("app/org.secret.App/x86_64/master"))
    sec.tag("latest", d["secret"])
    sec.write(data_dir)
    busybox()[0].write(data_dir)
    return d


CFG = f"""[protected]
trusted_proxies = 127.0.0.1/32
allow =
    secret/* {DN}
[flatpak]
max_age = 120
"""


@pytest.fixture
def fc(make_app, world):
    return make_app(CFG).test_client()


def names(resp) -> list[str]:
    return [r["Name"] for r in resp.json["Results"]]


def test_common_query_lists_app_and_runtime(fc, world):
    r = fc.get(COMMON, headers={"User-Agent": "Flatpak 1.14.10"})
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.json
    assert doc["Registry"] == "/"
    assert names(r) == ["fedora/hello", "fedora/platform"]  # no plain container, no protected repo
    hello = doc["Results"][0]
    assert hello["Lists"] == []
    [img] = hello["Images"]
    assert img == {
        "Tags": ["1.0", "latest"],  # every tag of the image, not just the one asked for
        "Digest": world["app"],
        "MediaType": "application/vnd.oci.image.manifest.v1+json",
        "OS": "linux",
        "Architecture": "amd64",
        "Labels": flatpak(APP_REF),
        "Annotations": {"org.example.a": "x"},
    }
    platform = doc["Results"][1]
    assert platform["Images"] == []
    [lst] = platform["Lists"]
    assert lst["Digest"] == world["rt_list"] and lst["Tags"] == ["latest"]
    assert lst["MediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [i["Digest"] for i in lst["Images"]] == [world["rt_amd"]]  # only the matching child
    assert "Tags" not in lst["Images"][0]
    # the unencoded spelling is the same query, the same document
    plain = fc.get("/index/static?tag=latest&os=linux&architecture=amd64&label:org.flatpak.ref:exists=1")
    assert plain.data == r.data and plain.headers["ETag"] == r.headers["ETag"]


def test_filters(fc, world):
    arm = fc.get("/index/static?label:org.flatpak.ref:exists=1&architecture=arm64&tag=latest")
    assert names(arm) == ["fedora/platform"]
    assert arm.json["Results"][0]["Lists"][0]["Images"][0]["Digest"] == world["rt_arm"]
    both = fc.get("/index/dynamic?tag=latest&tag=0.9&architecture=amd64&label:org.flatpak.ref:exists=1")
    hello = both.json["Results"][0]
    assert {i["Digest"] for i in hello["Images"]} == {world["app"], world["app_old"]}
    repo = fc.get("/index/dynamic?repository=fedora/platform")
    assert names(repo) == ["fedora/platform"]
    eq = fc.get(f"/index/dynamic?label:org.flatpak.ref={RT_REF}")
    assert names(eq) == ["fedora/platform"]
    assert fc.get(f"/index/dynamic?label:org.flatpak.ref={RT_REF}x").json["Results"] == []
    ann = fc.get("/index/dynamic?annotation:org.example.a:exists=1")
    assert names(ann) == ["fedora/hello"] and [i["Digest"] for i in ann.json["Results"][0]["Images"]] == [
        world["app"]
    ]
    assert names(fc.get("/index/dynamic?annotation:org.example.a=x")) == ["fedora/hello"]
    assert fc.get("/index/dynamic?annotation:org.example.a=y").json["Results"] == []
    assert fc.get("/index/dynamic?os=windows").json["Results"] == []
    # no filter: every tagged image with a platform. The version-5 busybox has none, so only its
    # list children appear, with the platform of their list entry
    everything = fc.get("/index/dynamic")
    assert names(everything) == ["fedora/busybox", "fedora/hello", "fedora/plain", "fedora/platform"]
    busy = everything.json["Results"][0]
    assert busy["Images"] == [] and busy["Lists"]
    assert all(i["Labels"] == {} for lst in busy["Lists"] for i in lst["Images"])
    label = fc.get("/index/dynamic?label:maintainer=me&os=linux")
    assert names(label) == ["fedora/plain"]


@pytest.mark.parametrize(
    "query",
    [
        "foo=bar",
        "label:org.flatpak.ref:exists=2",
        "label:org.flatpak.ref:exists=",
        "label:=x",
        "labels:x=1",
        "annotation=1",
        "tag=",
        "tag=bad%20tag",
        "tag=" + "a" * 200,
        "repository=Fedora/Hello",
        "repository=",
        "os=",
        "architecture=amd64&architecture=arm64",
        "architecture=a%0ab",
        "label:x%ff=1",
        "tag=%ff",
        "label:a%0ab=1",
        "&".join(f"tag=t{i}" for i in range(100)),
        "tag=" + "x" * 9000,
    ],
)
def test_bad_queries_are_400_json(fc, query):
    for path in ("/index/static", "/index/dynamic"):
        r = fc.get(f"{path}?{query}")
        assert r.status_code == 400, (query, r.data[:200])
        assert r.mimetype == "application/json"
        err = r.json["errors"][0]
        assert err["code"] in ("UNSUPPORTED", "TAG_INVALID", "NAME_INVALID") and err["message"]


def test_repeated_same_value_and_blank_separators_are_fine(fc):
    r = fc.get("/index/static?os=linux&os=linux&&tag=latest")
    assert r.status_code == 200 and names(r)


def test_protected_repositories_only_for_allowed_clients(fc, world):
    q = "/index/dynamic?label:org.flatpak.ref:exists=1&tag=latest"
    anon = fc.get(q)
    assert "secret/app" not in names(anon)
    assert anon.headers["Cache-Control"] == "public, no-cache"
    spoofed = fc.get(q, headers={"X-SSL-Client-DN": DN}, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert "secret/app" not in names(spoofed)
    allowed = fc.get(q, headers={"X-SSL-Client-DN": DN}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert names(allowed) == ["fedora/hello", "fedora/platform", "secret/app"]
    assert allowed.headers["Cache-Control"] == "private, no-cache"  # never in a shared cache
    other = fc.get(q, headers={"X-SSL-Client-DN": "CN=x"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert "secret/app" not in names(other)
    # the precomputed common answer is the anonymous one: it never leaks to or from a client view
    assert "secret/app" not in names(fc.get(COMMON))
    common_allowed = fc.get(
        COMMON, headers={"X-SSL-Client-DN": DN}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert "secret/app" in names(common_allowed)


def test_caching_headers_etag_304_gzip_head(fc):
    r = fc.get(COMMON)
    etag = r.headers["ETag"]
    assert etag.startswith('"') and r.headers["Cache-Control"] == "public, max-age=120"
    assert "Accept-Encoding" in r.headers["Vary"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    again = fc.get(COMMON, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert fc.get(COMMON, headers={"If-None-Match": '"other"'}).status_code == 200
    gz = fc.get(COMMON, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(gz.data) == r.data
    assert int(gz.headers["Content-Length"]) == len(gz.data)
    assert gz.headers["ETag"] != etag  # another representation, another strong ETag
    assert fc.get(COMMON, headers={"If-None-Match": gz.headers["ETag"]}).status_code == 304
    assert "Content-Encoding" not in fc.get(COMMON, headers={"Accept-Encoding": "gzip;q=0, br"}).headers
    head = fc.head(COMMON)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(r.data))
    dyn = fc.get(COMMON.replace("static", "dynamic"))
    assert dyn.headers["Cache-Control"] == "public, no-cache" and dyn.data == r.data
    assert fc.post(COMMON).status_code == 405
    assert fc.delete("/index/dynamic").status_code == 405


def test_reload_changes_answer_and_etag(make_app, world, data_dir):
    app = make_app(CFG)
    c = app.test_client()
    before = c.get(COMMON)
    hello = Native6("fedora/hello")
    d = hello.facts(hello.image("new"), labels=flatpak(APP_REF))
    hello.tag("latest", d).write(data_dir)
    assert refresh(app)
    after = c.get(COMMON)
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.json["Results"][0]["Images"][0]["Digest"] == d
    assert c.get(COMMON, headers={"If-None-Match": before.headers["ETag"]}).status_code == 200


def test_registry_url_and_host_header(make_app, world):
    c = make_app("[flatpak]\nregistry_url = https://registry.example.org\n").test_client()
    r = c.get(COMMON, headers={"Host": "evil.example.com"})
    assert r.json["Registry"] == "https://registry.example.org/"
    default = make_app("").test_client().get(COMMON, headers={"Host": "evil.example.com"})
    assert default.json["Registry"] == "/"  # relative: the client resolves it, Host is never echoed
    assert make_app("[flatpak]\nregistry_url = /registry\n").test_client().get(COMMON).json["Registry"] == (
        "/registry/"
    )


@pytest.mark.parametrize(
    "value",
    ["ftp://x/", "https://user@evil.com/", "//evil.com/", "https://x/?a", "/a b", "https://", "javascript:x"],
)
def test_bad_registry_url_is_a_config_error(value):
    with pytest.raises(ConfigError, match="registry_url"):
        parse_config(f"[flatpak]\nregistry_url = {value}\n")


def test_index_disabled(make_app, world):
    c = make_app("[flatpak]\nindex = false\n").test_client()
    r = c.get(COMMON)
    assert r.status_code == 404 and r.json["errors"][0]["code"] == "NOT_FOUND"


def test_no_metadata_dir_is_an_empty_index(make_app, data_dir):
    data_dir.rmdir()
    r = make_app("").test_client().get(COMMON)
    assert r.status_code == 200 and r.json == {"Registry": "/", "Results": []}


def test_awkward_labels_serialise(make_app, data_dir):
    n = Native6("fedora/odd")
    n.tag("latest", n.facts(n.image("x"), labels={"org.flatpak.ref": "app/x/x86_64/m", "s": "\ud800 é <>"}))
    n.write(data_dir)
    r = make_app("").test_client().get(COMMON)
    assert r.status_code == 200
    assert json.loads(r.data)["Results"][0]["Images"][0]["Labels"]["s"] == "\ud800 é <>"


def test_reload_reuses_entries_of_unchanged_repositories(make_app, world, data_dir):
    app = make_app(CFG)
    store = app.extensions["crane_fedora"].store
    before = {e.name: e for e in store.index.flatpak.repos}
    hello = Native6("fedora/hello")
    hello.tag("latest", hello.facts(hello.image("newer"), labels=flatpak(APP_REF))).write(data_dir)
    assert refresh(app)
    after = {e.name: e for e in store.index.flatpak.repos}
    assert after["fedora/platform"] is before["fedora/platform"]
    assert after["fedora/hello"] is not before["fedora/hello"]
    # an answer is rendered once per snapshot and then served from the cache
    q = store.index.flatpak
    from crane_fedora.metadata.flatpak import common_query

    assert q.answer(common_query("amd64"), None) is q.answer(common_query("amd64"), None)


def test_odd_list_entry_platforms_do_not_break_the_index(make_app, data_dir):
    n = Native("fedora/odd")  # version 5: list children take the platform of their list entry
    child = n.image("c")
    n.tag("latest", n.index([(child, "amd64", None)]))
    n.manifests[n.tags["latest"]]["manifests"][0]["platform"] = ["not", "an", "object"]
    n.write(data_dir)
    c = make_app("").test_client()
    assert c.get("/v2/fedora/odd/tags/list").status_code == 200
    r = c.get("/index/dynamic?repository=fedora/odd")
    assert r.status_code == 200 and r.json["Results"] == []


def test_answer_cache_is_bounded_in_bytes(make_app, world, monkeypatch):
    from crane_fedora.metadata import flatpak as fp

    fi = make_app(CFG).extensions["crane_fedora"].store.index.flatpak
    first = fi.answer(fp.parse_query("tag=latest"), None)
    monkeypatch.setattr(fp, "CACHE_BYTES", len(first.body) + len(first.gzipped) + 10)
    fi.answer(fp.parse_query("tag=1.0"), None)  # would exceed the budget: the cache starts over
    assert len(fi._cache) == 1 and fi._cached_bytes <= fp.CACHE_BYTES
    assert fi.answer(fp.parse_query("tag=latest"), None) is not first  # re-rendered


def test_random_queries_never_500(fc):
    """Random bytes, percent-escapes and key shapes: every answer is 200 or a 400 JSON error."""
    rng = random.Random(8)
    pieces = [
        "label:",
        "annotation:",
        ":exists",
        "=",
        "&",
        "%",
        "%3A",
        "%ff",
        "%00",
        "tag",
        "os",
        "1",
        "+",
        ";",
        "é",
    ]
    for _ in range(400):
        raw = "".join(rng.choice([*pieces, rng.choice(string.printable)]) for _ in range(rng.randint(0, 12)))
        r = fc.get("/index/static?" + raw)
        assert r.status_code in (200, 400), (raw, r.status_code)
        assert r.mimetype == "application/json"
