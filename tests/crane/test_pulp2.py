"""Pulp 2 Crane metadata (versions 1-4): loading, Crane's redirect rules, serve-content mode."""

from __future__ import annotations

import logging
import shutil
import urllib.request

import pytest

from pulp_fedora_mirror.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.harness.gunicorn import Gunicorn

from .conftest import FIXTURES

S2, ML = DOCKER_MANIFEST, DOCKER_LIST
BB = "https://cdn.example.com/pulp/docker/v2/fedora-pulp2-busybox/"
AMD64 = "sha256:1f1e2cbd3a1c63b6c8e4d7c3fd0d2b8c5ce25d2f9b6d37fe0a1b2c3d4e5f6a7b"
OLD_AMD64 = "sha256:2a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40414243444546474849"
API = ("Docker-Distribution-API-Version", "registry/2.0")


def location(client, path: str, accept: str | None = None) -> str:
    r = client.get(path, headers={"Accept": accept} if accept is not None else {})
    assert r.status_code == 302, r.data
    assert r.headers.get(API[0]) == API[1]
    return r.headers["Location"]


def test_versions_loaded_and_v1_skipped(make_app, pulp2_dir, caplog):
    with caplog.at_level(logging.INFO, logger="crane_fedora"):
        app = make_app()
    index = app.extensions["crane_fedora"].store.index
    assert {"legacy/hello", "legacy/schema2", "fedora/pulp2-busybox", "secret/pulp2"} <= set(index.repos)
    assert "redhat/busybox-v1" not in index.repos
    skipped = [r for r in caplog.records if "redhat-busybox-v1.json" in r.getMessage()]
    assert len(skipped) == 1 and "version 1" in skipped[0].getMessage()


def test_v2_flat_redirects_and_trailing_slash_added(make_app, pulp2_dir):
    client = make_app().test_client()
    base = "https://cdn.example.com/pulp/docker/v2/legacy-hello/"
    assert location(client, "/v2/legacy/hello/manifests/latest", S2) == base + "manifests/latest"
    assert location(client, "/v2/legacy/hello/tags/list") == base + "tags/list"
    digest = "sha256:" + "b" * 64
    assert location(client, f"/v2/legacy/hello/blobs/{digest}") == base + f"blobs/{digest}"


# Crane's negotiation table (crane.md §4), with q-values/*/* honoured and no Accept = anything.
@pytest.mark.parametrize(
    ("ref", "accept", "suffix"),
    [
        (
            "latest",
            f"{ML}, {S2}, application/vnd.docker.distribution.manifest.v1+prettyjws",
            "manifests/list/latest",
        ),
        ("latest", S2, f"manifests/2/{AMD64}"),
        ("old-list", S2, f"manifests/1/{OLD_AMD64}"),
        ("old-list", "application/vnd.docker.distribution.manifest.v1+json", f"manifests/1/{OLD_AMD64}"),
        ("latest", "application/vnd.docker.distribution.manifest.v1+json", "manifests/1/latest"),
        ("v2tag", S2, "manifests/2/v2tag"),
        ("v2tag", "application/vnd.docker.distribution.manifest.v1+json", "manifests/1/v2tag"),
        ("old", S2, "manifests/1/old"),
        (AMD64, S2, f"manifests/2/{AMD64}"),
        (AMD64, ML, f"manifests/1/{AMD64}"),
        # S2 or ML on a digest in no list (Crane checklist): schema 1 path
        ("sha256:" + "9" * 64, f"{S2}, {ML}", "manifests/1/sha256:" + "9" * 64),
        # Crane ignored these; now honoured:
        ("latest", f"{S2};q=0.5, {ML};q=1", "manifests/list/latest"),
        ("latest", f"{ML};q=0, {S2}", f"manifests/2/{AMD64}"),
        ("v2tag", "*/*", "manifests/2/v2tag"),
        ("latest", None, "manifests/list/latest"),
        # near miss on ML, S2 accepted: schema 2 for a tag in schema2_data (Crane checklist)
        ("v2tag", f"{ML}junk, {S2}", "manifests/2/v2tag"),
        # OCI-only clients: Pulp 2 stored no OCI content, so Crane's schema 1 fallback
        ("v2tag", f"{OCI_MANIFEST}, {OCI_INDEX}", "manifests/1/v2tag"),
    ],
)
def test_v4_negotiation(make_app, pulp2_dir, ref, accept, suffix):
    client = make_app().test_client()
    assert location(client, f"/v2/fedora/pulp2-busybox/manifests/{ref}", accept) == BB + suffix


def test_v3_repo(make_app, pulp2_dir):
    client = make_app().test_client()
    base = "https://cdn.example.com/pulp/docker/v2/legacy-schema2/"
    assert location(client, "/v2/legacy/schema2/manifests/v2tag", S2) == base + "manifests/2/v2tag"
    assert location(client, "/v2/legacy/schema2/manifests/v2tag", ML) == base + "manifests/1/v2tag"


def test_pulp2_blobs_tags_and_invalid(make_app, pulp2_dir):
    client = make_app().test_client()
    digest = "sha256:" + "c" * 64
    assert location(client, f"/v2/fedora/pulp2-busybox/blobs/{digest}") == BB + f"blobs/{digest}"
    assert location(client, "/v2/fedora/pulp2-busybox/tags/list?n=1") == BB + "tags/list"
    r = client.get("/v2/fedora/pulp2-busybox/blobs/../../etc")
    assert r.status_code in (400, 404) and "Location" not in r.headers
    # issue 13 item 10: a reference that is neither a tag nor a digest cannot exist: 404
    for ref in ("a b", ".INVALID"):
        r = client.get(f"/v2/fedora/pulp2-busybox/manifests/{ref}")
        assert r.status_code == 404 and r.json["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert "Location" not in r.headers
    # Crane's 500s (v3/v4 repo, /manifests and /manifests/a/b) are 404 JSON now
    for path in ("/v2/fedora/pulp2-busybox/manifests", "/v2/fedora/pulp2-busybox/manifests/a/b"):
        r = client.get(path)
        assert r.status_code == 404 and r.json["errors"][0]["code"] == "NAME_UNKNOWN"


def test_cdn_on_pulp2(make_app, pulp2_dir):
    client = make_app(
        "[cdn]\nurl_match = cdn.example.com\nurl_replace = cdn2.example.org\nurl_auth_secret = abc123\n"
    ).test_client()
    loc = location(client, "/v2/legacy/hello/manifests/latest")
    assert loc.startswith("https://cdn2.example.org/pulp/docker/v2/legacy-hello/manifests/latest?_auth_=exp=")


def _content_dir(tmp_path):
    root = tmp_path / "web"
    repo = root / "fedora-pulp2-busybox"
    for sub in ("manifests/list", "manifests/2", "manifests/1", "blobs", "tags"):
        (repo / sub).mkdir(parents=True)
    (repo / "manifests/list/latest").write_bytes(b'{"list": true}')
    (repo / f"manifests/2/{AMD64}").write_bytes(b'{"schema": 2}')
    (repo / f"blobs/sha256:{'d' * 64}").write_bytes(b"x" * 1000)
    (repo / "tags/list").write_bytes(b'{"name": "fedora/pulp2-busybox", "tags": ["latest"]}')
    return root


def test_serve_content_x_sendfile(make_app, pulp2_dir, tmp_path):
    root = _content_dir(tmp_path)
    client = make_app(f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\n").test_client()
    r = client.get("/v2/fedora/pulp2-busybox/manifests/latest", headers={"Accept": f"{ML}, {S2}"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == ML
    assert r.headers["X-Sendfile"] == str(root / "fedora-pulp2-busybox/manifests/list/latest")
    assert r.headers["Cache-Control"] == "public, max-age=0"  # polling interval (0 in tests)
    assert r.headers.get(API[0]) == API[1]
    r = client.get("/v2/fedora/pulp2-busybox/manifests/latest", headers={"Accept": S2})
    assert r.headers["Content-Type"] == S2
    assert r.headers["X-Sendfile"].endswith(f"manifests/2/{AMD64}")
    assert r.headers["Cache-Control"] == "public, max-age=43200"
    r = client.get(f"/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}")
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Length"] == "1000"
    r = client.get(f"/v2/fedora/pulp2-busybox/blobs/sha256:{'e' * 64}")
    assert r.status_code == 404 and r.json["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert r.headers.get(API[0]) == API[1]


def test_serve_content_streaming(make_app, pulp2_dir, tmp_path):
    root = _content_dir(tmp_path)
    client = make_app(
        f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\nuse_x_sendfile = false\n"
    ).test_client()
    r = client.get(f"/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}")
    assert r.status_code == 200 and r.data == b"x" * 1000
    assert "X-Sendfile" not in r.headers
    r = client.get("/v2/fedora/pulp2-busybox/tags/list")
    assert r.json == {"name": "fedora/pulp2-busybox", "tags": ["latest"]}


@pytest.mark.parametrize(
    ("range_", "status", "want", "content_range"),
    [
        ("bytes=10-19", 206, slice(10, 20), "bytes 10-19/1000"),
        ("bytes=990-", 206, slice(990, 1000), "bytes 990-999/1000"),
        ("bytes=-5", 206, slice(995, 1000), "bytes 995-999/1000"),
        ("bytes=995-5000", 206, slice(995, 1000), "bytes 995-999/1000"),  # clipped to the file
        ("bytes=0-0", 206, slice(0, 1), "bytes 0-0/1000"),
        ("bytes=-5000", 206, slice(0, 1000), "bytes 0-999/1000"),  # a suffix longer than the file
        # several ranges: the whole file (allowed; clients such as podman accept a 200)
        ("bytes=0-1,5-6", 200, slice(0, 1000), None),
        ("bytes=abc", 200, slice(0, 1000), None),  # not a valid Range: ignored (RFC 9110 14.2)
        ("items=0-5", 200, slice(0, 1000), None),  # another unit: ignored
    ],
)
def test_serve_content_streaming_answers_byte_ranges(make_app, pulp2_dir, tmp_path, range_, status, want,
                                                     content_range):  # fmt: skip
    """Serve-content mode streams single byte ranges (206), as the X-Sendfile mode's Apache and
    every mirror do: podman resumes blobs and reads zstd:chunked tables of contents with Range."""
    root = _content_dir(tmp_path)
    data = bytes(range(256)) * 3 + bytes(232)
    (root / "fedora-pulp2-busybox" / f"blobs/sha256:{'d' * 64}").write_bytes(data)
    client = make_app(
        f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\nuse_x_sendfile = false\n"
    ).test_client()
    r = client.get(f"/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}", headers={"Range": range_})
    assert r.status_code == status
    assert r.data == data[want]
    assert r.headers["Content-Length"] == str(len(data[want]))
    assert r.headers.get("Content-Range") == content_range
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"


def test_serve_content_unsatisfiable_range_and_if_range(make_app, pulp2_dir, tmp_path):
    root = _content_dir(tmp_path)
    client = make_app(
        f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\nuse_x_sendfile = false\n"
    ).test_client()
    path = f"/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}"
    r = client.get(path, headers={"Range": "bytes=1000-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */1000"
    assert r.json["errors"][0]["code"] == "RANGE_INVALID"
    assert r.headers.get(API[0]) == API[1]
    # If-Range: crane has no validator to compare it with, so the whole file (RFC 9110 13.1.5)
    r = client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"abc"'})
    assert r.status_code == 200 and r.data == b"x" * 1000
    # HEAD describes the whole file
    r = client.head(path, headers={"Range": "bytes=0-9"})
    assert r.status_code == 200 and r.headers["Content-Length"] == "1000"


@pytest.mark.services
@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_serve_content_ranges_through_gunicorn(pulp2_dir, tmp_path, worker_class):
    """Ranges through a real server (sync: sendfile through ``wsgi.file_wrapper``; gthread), not
    only the test client: the right bytes and Content-Length for the whole file and for ranges."""
    root = _content_dir(tmp_path)
    data = bytes(range(256)) * 400
    (root / "fedora-pulp2-busybox" / f"blobs/sha256:{'d' * 64}").write_bytes(data)
    conf = tmp_path / "crane.conf"
    conf.write_text(
        f"[general]\ndata_dir = {pulp2_dir}\n[serve_content]\nenable = true\n"
        f"content_dir_v2 = {root}\nuse_x_sendfile = false\n"
    )
    with Gunicorn(
        tmp_path / "gunicorn", "crane_fedora.wsgi:application", env={"CRANE_CONFIG_PATH": str(conf)},
        workers=1, worker_class=worker_class, pythonpath=str(FIXTURES.parents[1]),
    ) as server:  # fmt: skip
        url = f"http://{server.host}/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}"
        for headers, status, want in [
            ({}, 200, data),
            ({"Range": "bytes=1000-1999"}, 206, data[1000:2000]),
            ({"Range": "bytes=-300"}, 206, data[-300:]),
            ({"Range": "bytes=0-0"}, 206, data[:1]),
        ]:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                assert (r.status, r.read()) == (status, want)
                assert r.headers["Content-Length"] == str(len(want))


def test_serve_content_streams_what_it_opened(make_app, pulp2_dir, tmp_path):
    """The reply owns an open file: a blob removed (or replaced) after the headers were decided
    still streams exactly the bytes those headers describe, and a missing one is a clean 404."""
    root = _content_dir(tmp_path)
    app = make_app(f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\nuse_x_sendfile = false\n")
    registry = app.extensions["crane_fedora"].registry
    blob = root / "fedora-pulp2-busybox" / "blobs" / f"sha256:{'d' * 64}"
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/v2/fedora/pulp2-busybox/blobs/sha256:{'d' * 64}"}
    status, headers, body = registry.handle(dict(environ))
    assert status.startswith("200") and ("Content-Length", "1000") in headers
    blob.unlink()
    with body.fh:
        assert body.fh.read() == b"x" * 1000
    status, headers, body = registry.handle(dict(environ))
    assert status.startswith("404") and b"BLOB_UNKNOWN" in body


def test_serve_content_missing_dir_disables_with_one_error(make_app, pulp2_dir, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="crane_fedora"):
        client = make_app(
            f"[serve_content]\nenable = true\ncontent_dir_v2 = {tmp_path / 'nope'}\n"
        ).test_client()
    errors = [r for r in caplog.records if "serve_content" in r.getMessage()]
    assert len(errors) == 1
    assert client.get("/v2/legacy/hello/manifests/latest").status_code == 302


def test_bad_pulp2_file_rejected(make_app, data_dir, caplog):
    shutil.copy(FIXTURES / "v2" / "legacy-hello.json", data_dir / "ok.json")
    (data_dir / "bad.json").write_text('{"version": 4, "repo-registry-id": "x/y", "url": "ftp://x/"}')
    (data_dir / "v9.json").write_text(
        '{"version": 9, "repo-registry-id": "x/z", "url": "https://x/", "repository": "r"}'
    )
    with caplog.at_level(logging.ERROR, logger="crane_fedora"):
        app = make_app()
    assert set(app.extensions["crane_fedora"].store.index.repos) == {"legacy/hello"}
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "bad.json" in msgs and "v9.json" in msgs and "unknown metadata version 9" in msgs


def test_allowed_url_prefixes_reject_pulp2(make_app, pulp2_dir):
    app = make_app("[mirrors]\nallowed_url_prefixes = https://cdn.example.com/pulp/docker/v2/legacy-\n")
    assert set(app.extensions["crane_fedora"].store.index.repos) == {"legacy/hello", "legacy/schema2"}


def test_protected_defaults_false_and_lists_preserved(make_app, pulp2_dir):
    repos = make_app().extensions["crane_fedora"].store.index.repos
    assert repos["legacy/hello"].protected is False
    assert repos["secret/pulp2"].protected is True
    bb = repos["fedora/pulp2-busybox"]
    assert bb.amd64_tags["latest"] == (AMD64, 2) and bb.amd64_tags["old-list"] == (OLD_AMD64, 1)
    assert "v2tag" in bb.schema2_data and "latest" in bb.manifest_list_data


def test_name_without_namespace(make_app, data_dir):
    (data_dir / "hello.json").write_text(
        '{"version": 2, "repo-registry-id": "hello", "repository": "hello", "url": "https://cdn.example.com/h"}'
    )
    client = make_app().test_client()
    assert location(client, "/v2/hello/tags/list") == "https://cdn.example.com/h/tags/list"


@pytest.mark.parametrize("area", ["manifests", "blobs"])
@pytest.mark.parametrize("ref", ["sha256:zz", "sha256:" + "A" * 64, "sha512:zz", "sha256:XYZ!"])
def test_pulp2_malformed_registered_digest_is_invalid(make_app, pulp2_dir, fast_path, area, ref):
    # issue 13 item 9: answered like native repositories, never redirected
    client = make_app().test_client()
    for method in ("get", "head"):
        r = getattr(client, method)(f"/v2/fedora/pulp2-busybox/{area}/{ref}")
        assert r.status_code == 400 and "Location" not in r.headers
        if method == "get":
            assert r.json["errors"][0]["code"] == "DIGEST_INVALID"


def test_pulp2_valid_digests_still_redirect(make_app, pulp2_dir):
    client = make_app().test_client()
    for digest in ("sha256:" + "c" * 64, "sha512:" + "c" * 128):
        assert location(client, f"/v2/fedora/pulp2-busybox/blobs/{digest}") == BB + f"blobs/{digest}"
