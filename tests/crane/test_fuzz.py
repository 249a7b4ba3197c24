"""Odd paths, methods, queries and headers: never a 500, never HTML, API header on every /v2 answer."""

from __future__ import annotations

import random
import string

import pytest

PATHS = [
    "/v2/",
    "/v2",
    "/v2//",
    "/v2///",
    "/v2/_catalog",
    "/v2/_catalog/",
    "/v2/_catalog?n=x",
    "/v2/_catalog?n=99999999999999999999",
    "/v2/fedora/busybox",
    "/v2/fedora/busybox/",
    "/v2/fedora/busybox/manifests",
    "/v2/fedora/busybox/manifests/",
    "/v2/fedora/busybox/manifests/latest/",
    "/v2/fedora/busybox/manifests/a/b/c",
    "/v2/fedora/busybox/blobs/",
    "/v2/fedora/busybox/blobs/uploads/",
    "/v2/fedora/busybox/blobs/uploads/x",
    "/v2/fedora/busybox/tags",
    "/v2/fedora/busybox/tags/",
    "/v2/fedora/busybox/tags/list/",
    "/v2/fedora/busybox/tags/list?n=&last=",
    "/v2/fedora/busybox/tags/list?n=1&n=2&last=%00",
    "/v2/fedora/busybox/tags/list?%zz",
    "/v2/tags",
    "/v2/tags/",
    "/v2/manifests/latest",
    "/v2/../etc/passwd",
    "/v2/%2e%2e/%2e%2e/etc/passwd",
    "/v2/fedora/busybox/manifests/%00",
    "/v2/fedora/busybox/manifests/..",
    "/v2/fedora/busybox/blobs/sha256:",
    "/v2/fedora/busybox/blobs/sha256:" + "g" * 64,
    "/v2/fedora/busybox/manifests/sha256:" + "A" * 64,
    "/v2/\u00e9t\u00e9/manifests/latest",
    "/v2/fedora/busybox/manifests/l\u00e4test",
    "/v2/" + "a/" * 300 + "tags/list",
    "/v2/legacy/hello/manifests/latest%0d%0aX-Evil:1",
    "/v2/legacy/hello/blobs/..%2f..%2fx",
    "/v2/fedora/pulp2-busybox/manifests",
    "/v2/fedora/pulp2-busybox/manifests/a/b",
    "/v2/secret/pulp2/tags/list",
    "/v1/",
    "/v1",
    "/crane/",
    "/healthz/",
    "/",
    "/%",
    "/v2x",
    "/v20/",
    "/v3/",
]
HEADERS = [
    {},
    {"Accept": ""},
    {"Accept": ",,,;;;"},
    {"Accept": "*/*;q=abc"},
    {"Accept": "a" * 5000},
    {"Accept": "application/vnd.oci.image.index.v1+json;q=-1"},
    {"If-None-Match": "\x00"},
    {"If-None-Match": "*"},
    {"X-SSL-Client-DN": "CN=x"},
    {"Accept": "text/html"},
    {"Range": "bytes=0-10"},
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"]


def check(resp, path: str) -> None:
    assert resp.status_code < 500, (path, resp.status_code, resp.data[:200])
    ctype = resp.headers.get("Content-Type", "")
    if "html" in ctype:  # only the browsable pages (tests/crane/test_ui.py), never under /v2
        assert not path.startswith("/v2") and ctype == "text/html; charset=utf-8", (path, ctype)
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"], path
        return
    assert "html" not in ctype, (path, ctype)
    assert b"<html" not in resp.data.lower() and b"<!doctype" not in resp.data.lower()
    if resp.data and resp.status_code >= 400:
        assert ctype == "application/json", (path, ctype)
        assert "errors" in resp.json
    if path.startswith("/v2") and (len(path) == 3 or path[3] in "/?"):
        assert resp.headers.get("Docker-Distribution-API-Version") == "registry/2.0", path
    loc = resp.headers.get("Location")
    if loc:
        assert loc.startswith(
            ("/v2/", "https://dl.example.org/", "https://download.example.org/", "https://cdn.example.com/")
        ), loc


@pytest.mark.parametrize("method", METHODS)
def test_odd_paths_and_methods(client, method):
    for path in PATHS:
        check(client.open(path, method=method), path)


def test_odd_headers(client):
    for headers in HEADERS:
        for path in ("/v2/fedora/busybox/manifests/latest", "/v2/fedora/busybox/tags/list", "/v2/_catalog"):
            check(client.get(path, headers=headers), path)


def test_random_paths(client):
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + "/._-:%?&=~ "
    parts = [
        "manifests",
        "blobs",
        "tags",
        "list",
        "fedora",
        "busybox",
        "latest",
        "sha256:" + "a" * 64,
        "",
        "..",
    ]
    for _ in range(600):
        if rng.random() < 0.5:
            tail = "/".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        else:
            tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        path = "/v2/" + tail
        check(client.open(path, method=rng.choice(["GET", "HEAD", "PUT"])), path.split("?")[0])
