"""Property-based fuzzing of ``/v2`` with hypothesis: random paths, methods, queries and headers.

Why on top of ``test_fuzz.py``: that file replays fixed lists; hypothesis explores and shrinks
(it found nothing new after the fixes in ``test_security.py``, and it guards them). Requests go
straight to the WSGI callable with a hand-made environ, so ``PATH_INFO`` can hold exactly what a
server puts there after percent-decoding (NUL, CR, LF, latin-1), which a test client would quote.

Properties, for both the WSGI fast path and the Flask path:

- never a 5xx, every header value printable latin-1 (no response splitting);
- errors are OCI JSON documents; every ``/v2`` answer carries the API-version header;
- any ``Location`` is under a configured base (master, CDN rewrite target, Pulp 2 URL) or ``/v2/``,
  on the same host, with a clean path;
- HEAD answers exactly like GET without the body, and ``Content-Length`` is the GET body's length;
- the fast path and the Flask path give identical answers;
- an anonymous client gets the same answer for a protected repository as for an unknown one.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crane_fedora.app import create_app
from crane_fedora.config import parse_config
from tests.harness.wsgi import wsgi_environ

from .builder import MASTER, Native, busybox

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pulp2"
CDN = "https://mirrors.example.net/containers/"
BASES = (MASTER, CDN, "https://cdn.example.com/pulp/docker/v2/", "/v2/")
DN = "CN=builder.example.org,O=Fedora Project"
CONFIG = f"""[cdn]
url_match = https://download.example.org/pub/containers/
url_replace = {CDN}
url_auth_secret = 00112233445566778899aabbccddeeff
[registry]
page_size_max = 3
[protected]
trusted_proxies = 127.0.0.1
allow =
    secret/* {DN}
"""
SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """(fast path app, Flask path app) over one data dir: busybox, a protected repo, Pulp 2."""
    data = tmp_path_factory.mktemp("metadata")
    busybox()[0].write(data)
    secret = Native("secret/native", protected=True)
    secret.tag("latest", secret.image("1"))
    secret.write(data)
    for f in FIXTURES.glob("*/*.json"):
        if f.name != "dup-native.json":
            shutil.copy(f, data / f.name)
    text = f"[general]\ndata_dir = {data}\ndata_dir_polling_interval = 0\n{CONFIG}"
    made = [create_app(dataclasses.replace(parse_config(text), fast_path=fp)) for fp in (True, False)]
    yield made
    for app in made:
        app.extensions["crane_fedora"].store.stop()


def call(app, method: str, path: str, query: str = "", headers: dict | None = None, remote="192.0.2.7"):
    """One request through the full WSGI stack, as a server would make it."""
    environ = wsgi_environ(method, path, query, headers, remote)
    seen: dict = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = status, list(response_headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return int(seen["status"][:3]), seen["headers"], body


def check(status: int, headers: list, body: bytes, path: str) -> None:
    """The properties every answer must have."""
    hmap = {k.lower(): v for k, v in headers}
    assert status < 500, (path, status, body[:200])
    for key, value in headers:
        value.encode("latin-1")
        assert value.isprintable(), (key, value)
    ctype = hmap.get("content-type", "")
    if "html" in ctype:  # only the browsable pages (tests/crane/test_ui.py), never under /v2
        assert not (path == "/v2" or path.startswith("/v2/")), path
        assert ctype == "text/html; charset=utf-8" and status in (200, 304, 404), (path, status, ctype)
        assert "default-src 'none'" in hmap["content-security-policy"], path
        return
    if status >= 400:
        assert ctype == "application/json", (path, ctype)
        if body:
            doc = json.loads(body)
            assert isinstance(doc["errors"], list) and doc["errors"][0]["code"]
    if path == "/v2" or path.startswith("/v2/"):
        assert hmap.get("docker-distribution-api-version") == "registry/2.0", path
    location = hmap.get("location")
    if location is not None:
        base = next((b for b in BASES if location.startswith(b)), None)
        assert base is not None, location
        if base != "/v2/":
            parts = urlsplit(location)
            assert parts.netloc == urlsplit(base).netloc and not parts.username, location
            assert ".." not in parts.path.split("/") and "//" not in parts.path, location
            assert re.fullmatch(r"[A-Za-z0-9/._:=~-]*", parts.path), location
    if "content-length" in hmap and status not in (304,) and body:
        assert int(hmap["content-length"]) == len(body)


def comparable(headers: list) -> list:
    """Headers without what follows the clock: the CDN token's expiry, and ``Date`` (Werkzeug's
    ``make_conditional`` adds one to the home page's answers; two calls can straddle a second)."""
    return sorted(
        (k, re.sub(r"_auth_=.*", "", v) if k == "Location" else v) for k, v in headers if k != "Date"
    )


# -- strategies -------------------------------------------------------------------------------
latin1 = st.characters(max_codepoint=255)
words = st.sampled_from(
    [
        "manifests", "blobs", "tags", "list", "fedora", "busybox", "secret", "native", "legacy",
        "hello", "pulp2", "latest", "40", "dockerlist", "fresh", "_catalog", "uploads", "..", ".",
        "", "library", "sha256:" + "a" * 64, "sha512:" + "b" * 128, "sha256:", "%2e%2e", "\x00",
        "\r\n", "\n", "evil.com", "\\", "@evil.com", "//evil.com", "\u00e9",
    ]
)  # fmt: skip
segments = st.lists(st.one_of(words, st.text(latin1, max_size=12)), max_size=7)
names = st.sampled_from(
    ["fedora/busybox", "legacy/hello", "legacy/schema2", "fedora/pulp2-busybox", "secret/native", "no/such"]
)
#: the characters that broke things before, more often than a uniform latin-1 draw would give them
noise = st.one_of(
    st.sampled_from(["", "\n", "\r\n", "\x00", "\t", "/", " ", "\x7f", "\u00ff", "%"]),
    st.text(latin1, max_size=2),
)
#: a known repository, a keyword and a known reference with a little noise around it
structured = st.tuples(names, st.sampled_from(["manifests", "blobs", "tags", "referrers"]), words, noise).map(
    lambda t: f"/v2/{t[0]}/{t[1]}/{t[2]}{t[3]}"
)
#: the signature extension beside /v2 (same registry code, same properties)
extensions = st.tuples(names, st.sampled_from(["signatures", "manifests", ""]), words, noise).map(
    lambda t: f"/extensions/v2/{t[0]}/{t[1]}/{t[2]}{t[3]}"
)
paths = st.one_of(
    structured,
    structured,  # twice: half of all paths
    extensions,
    segments.map(lambda s: "/v2/" + "/".join(s)),
    st.text(latin1, max_size=60).map(lambda s: "/v2" + s),
    st.text(latin1, max_size=30).map(lambda s: "/" + s),
)
numbers = st.one_of(st.integers(-(10**30), 10**30).map(str), st.text(latin1, max_size=8))
queries = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(st.sampled_from(["n", "last", "x", "n[]", "", "artifactType"]), st.one_of(numbers, words)),
        max_size=4,
    ).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv)),
    st.text(latin1, max_size=40),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
media = st.sampled_from(
    [
        "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json", "*/*", "application/*", "text/html",
    ]
)  # fmt: skip
accepts = st.one_of(
    header_text,
    st.lists(st.tuples(media, st.one_of(st.just(""), numbers.map(lambda q: f";q={q}"))), max_size=6).map(
        lambda items: ",".join(m + q for m, q in items)
    ),
)
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "Accept": accepts,
        "If-None-Match": st.one_of(header_text, st.just("*"), st.just('"sha256:' + "a" * 64 + '"')),
        "Host": header_text,
        "X-SSL-Client-DN": st.one_of(header_text, st.just(DN)),
        "X-Forwarded-Host": header_text,
        "Range": header_text,
    },
)
methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]),
    st.text(st.characters(min_codepoint=65, max_codepoint=90), min_size=1, max_size=8),
)
remotes = st.sampled_from(["192.0.2.7", "127.0.0.1", "::1", "not-an-ip", ""])


# -- properties -------------------------------------------------------------------------------
@SETTINGS
@given(method=methods, path=paths, query=queries, headers=header_sets, remote=remotes)
def test_any_request_gets_a_sane_answer_and_both_paths_agree(apps, method, path, query, headers, remote):
    fast, flask = (call(app, method, path, query, headers, remote) for app in apps)
    check(*fast, path)
    check(*flask, path)
    assert fast[0] == flask[0] and fast[2] == flask[2], (path, fast[0], flask[0])
    assert comparable(fast[1]) == comparable(flask[1]), path


@SETTINGS
@given(path=paths, query=queries, headers=header_sets, remote=remotes)
def test_head_is_get_without_the_body(apps, path, query, headers, remote):
    for app in apps:
        get = call(app, "GET", path, query, headers, remote)
        head = call(app, "HEAD", path, query, headers, remote)
        assert head[0] == get[0] and head[2] == b"", path
        assert comparable(head[1]) == comparable(get[1]), path


tails = st.tuples(st.sampled_from(["manifests", "blobs", "tags", "referrers"]), st.one_of(words, header_text))


@SETTINGS
@given(
    name=st.sampled_from(["secret/native", "secret/pulp2"]),
    tail=tails,
    method=st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT"]),
    query=queries,
    headers=header_sets,
    remote=st.sampled_from(["192.0.2.7", "127.0.0.1"]),
)
def test_protected_repo_is_indistinguishable_from_unknown(apps, name, tail, method, query, headers, remote):
    if remote == "127.0.0.1":
        headers = {**headers, "X-SSL-Client-DN": "CN=someone else"}  # trusted proxy, wrong DN
    unknown = "secret/nothere"[: len(name)].ljust(len(name), "x")
    for app in apps:
        protected = call(app, method, f"/v2/{name}/{tail[0]}/{tail[1]}", query, headers, remote)
        other = call(app, method, f"/v2/{unknown}/{tail[0]}/{tail[1]}", query, headers, remote)
        assert protected[0] == other[0]
        assert protected[2].replace(name.encode(), unknown.encode()) == other[2]
        assert comparable(protected[1]) == comparable(other[1])
        assert protected[0] in (400, 404, 200, 405), protected  # 200: OPTIONS only
    query, listed = "n=3", []
    while query:  # every catalog page (page_size_max = 3)
        status, response_headers, body = call(apps[0], "GET", "/v2/_catalog", query, headers, remote)
        assert status == 200
        listed += json.loads(body)["repositories"]
        link = dict(response_headers).get("Link", "")
        query = link[link.index("?") + 1 : link.index(">")] if link else ""
    assert listed and not any(n.startswith("secret/") for n in listed), listed


@SETTINGS
@given(
    name=names,
    keyword=st.sampled_from(["manifests", "blobs", "tags"]),
    ref=st.sampled_from(["latest", "40", "list", "hello", "sha256:" + "a" * 64, "sha512:" + "b" * 128]),
    before=noise,
    after=noise,
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_known_reference_with_noise(apps, name, keyword, ref, before, after, method):
    """Valid references with one odd character around them: where a lax grammar check shows."""
    path = f"/v2/{name}/{keyword}/{before}{ref}{after}"
    fast, flask = (call(app, method, path) for app in apps)
    check(*fast, path)
    check(*flask, path)
    assert fast[0] == flask[0] and comparable(fast[1]) == comparable(flask[1]), path
