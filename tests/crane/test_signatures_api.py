"""The signature extension API (``/extensions/v2/<name>/signatures/<digest>``), both code paths.

The JSON is what containers/image reads (``docker_image_src.go``: schemaVersion 2, type
"atomic", base64 ``content``); real skopeo/podman verification through it is in
tests/e2e/test_signatures.py.
"""

from __future__ import annotations

import base64
import re

import pytest

from .builder import Native, busybox
from .test_native import assert_error

DN = "CN=builder.example.org,O=Fedora Project"
PROTECTED_CFG = f"""[protected]
trusted_proxies = 127.0.0.1/32, ::1
allow =
    secret/* {DN}
"""


@pytest.fixture
def signed(data_dir):
    native, d = busybox()
    native.sign(d["amd64"], b"first signature", b"second signature")
    native.sign(d["index"], b"list signature")
    native.write(data_dir)
    secret = Native("secret/image", protected=True)
    s = secret.image("1")
    secret.tag("latest", s).sign(s, b"secret signature")
    secret.write(data_dir)
    return d, s


def ext(name: str, digest: str) -> str:
    return f"/extensions/v2/{name}/signatures/{digest}"


def test_v2_advertises_the_extension(make_app, signed):
    c = make_app().test_client()
    for method in ("get", "head"):
        r = getattr(c, method)("/v2/")
        assert r.status_code == 200
        assert r.headers["X-Registry-Supports-Signatures"] == "1"


def test_signatures_json(make_app, signed):
    d, _ = signed
    c = make_app().test_client()
    r = c.get(ext("fedora/busybox", d["amd64"]))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    sigs = r.json["signatures"]
    assert [base64.b64decode(s["content"]) for s in sigs] == [b"first signature", b"second signature"]
    for s in sigs:
        assert s["schemaVersion"] == 2 and s["type"] == "atomic"
        assert re.fullmatch(re.escape(d["amd64"]) + r"@[0-9a-f]{32}", s["name"])
    assert sigs[0]["name"] != sigs[1]["name"]
    # stable: the same on another app instance (another crane host, a reload)
    assert make_app().test_client().get(ext("fedora/busybox", d["amd64"])).json == r.json
    assert [
        base64.b64decode(s["content"]) for s in c.get(ext("fedora/busybox", d["index"])).json["signatures"]
    ] == [b"list signature"]
    # a manifest without signatures: an empty list (the client then reports "no signature exists")
    assert c.get(ext("fedora/busybox", d["arm64"])).json == {"signatures": []}
    head = c.head(ext("fedora/busybox", d["amd64"]))
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == r.headers["Content-Length"]


def test_signatures_errors(make_app, signed):
    d, _ = signed
    c = make_app().test_client()
    assert_error(c.get(ext("Fedora/BusyBox", d["amd64"])), 400, "NAME_INVALID")
    assert_error(c.get(ext("fedora/nothere", d["amd64"])), 404, "NAME_UNKNOWN")
    assert_error(c.get(ext("fedora/busybox", "sha256:" + "0" * 64)), 404, "MANIFEST_UNKNOWN")
    assert_error(c.get(ext("fedora/busybox", "sha512:" + "0" * 128)), 404, "MANIFEST_UNKNOWN")
    assert_error(c.get(ext("fedora/busybox", "latest")), 400, "DIGEST_INVALID")
    assert_error(c.get(ext("fedora/busybox", "sha256:" + "0" * 64 + "%0a")), 400, "DIGEST_INVALID")
    assert_error(c.get(f"/extensions/v2/fedora/busybox/other/{d['amd64']}"), 404, "NAME_UNKNOWN")
    assert_error(c.get("/extensions/v2/"), 404, "NAME_UNKNOWN")
    r = c.put(ext("fedora/busybox", d["amd64"]), data=b"{}")
    assert_error(r, 405, "UNSUPPORTED")
    assert "GET" in r.headers["Allow"]


def test_protected_repository_as_for_manifests(make_app, signed):
    _, s = signed
    c = make_app(PROTECTED_CFG).test_client()
    denied = c.get(ext("secret/image", s))
    assert_error(denied, 404, "NAME_UNKNOWN")
    unknown = c.get(ext("secret/nothere", s))
    assert denied.json["errors"][0]["message"] == unknown.json["errors"][0]["message"]
    ok = c.get(
        ext("secret/image", s), headers={"X-SSL-Client-DN": DN}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert ok.status_code == 200, ok.json
    assert base64.b64decode(ok.json["signatures"][0]["content"]) == b"secret signature"


def test_pulp2_repository_has_no_signatures(make_app, signed, pulp2_dir):
    c = make_app().test_client()
    r = c.get(ext("legacy/schema2", "sha256:" + "1" * 64))
    assert r.status_code == 200 and r.json == {"signatures": []}
    assert_error(c.get(ext("secret/pulp2", "sha256:" + "1" * 64)), 404, "NAME_UNKNOWN")


def test_extension_can_be_unadvertised(make_app, signed):
    """containers/image prefers an advertised extension over a configured lookaside: turning the
    header off sends clients to the mirrors' signatures/ (the endpoint itself keeps answering)."""
    d, _ = signed
    c = make_app("[registry]\nsignatures_extension = off\n").test_client()
    r = c.get("/v2/")
    assert r.status_code == 200 and "X-Registry-Supports-Signatures" not in r.headers
    assert len(c.get(ext("fedora/busybox", d["amd64"])).json["signatures"]) == 2
