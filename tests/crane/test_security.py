"""Attacks crane_fedora resists, one section per attack, each named for the behaviour it keeps.

Why a separate file: these pin down attacks (header injection, memory exhaustion, one bad file
taking the service down, redirects leaving the configured URLs), not ordinary behaviour, so a
later change that reopens one of them fails a test whose name says which attack it is. What they
cost per request is measured in benchmarks/hotpath_bench.py, not timed here.
"""

from __future__ import annotations

import pytest

from pulp_fedora_mirror.layout import ANY_DIGEST_RE, DIGEST_RE, NAME_RE, TAG_RE

HEX = "a" * 64


def _headers_clean(resp) -> None:
    """No header value may carry a control character (response splitting)."""
    for key, value in resp.headers.items():
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value), (key, value)


# -- a reference with a trailing newline ("%0a") is refused: none reaches a Location header -------
# A digest or name with it is malformed (400); a tag with it cannot exist, so the manifest is
# unknown (404 MANIFEST_UNKNOWN, as Distribution answers: issue 13 item 10).
@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/v2/legacy/hello/blobs/sha256:{HEX}%0a", 400),
        ("/v2/legacy/hello/manifests/latest%0a", 404),
        ("/v2/fedora/pulp2-busybox/manifests/latest%0a", 404),
        ("/v2/fedora/busybox/manifests/latest%0a", 404),
        (f"/v2/fedora/busybox/blobs/sha256:{HEX}%0a", 400),
        ("/v2/fedora/busybox%0a/tags/list", 400),
    ],
)
def test_trailing_newline_is_not_a_valid_reference(client, path, status):
    resp = client.get(path)
    assert resp.status_code == status, resp.data
    assert "Location" not in resp.headers
    _headers_clean(resp)


@pytest.mark.parametrize("regex", [DIGEST_RE, ANY_DIGEST_RE, NAME_RE, TAG_RE])
def test_grammar_regexes_reject_trailing_newline(regex):
    valid = {DIGEST_RE: f"sha256:{HEX}", ANY_DIGEST_RE: f"sha256:{HEX}", NAME_RE: "a/b", TAG_RE: "latest"}
    assert regex.match(valid[regex])
    assert not regex.match(valid[regex] + "\n")


# -- a huge Accept header is read in part and cached in bounded memory ---------------------------
def _hostile_accept(seed: int, ranges: int = 80_000) -> str:
    """What a client can send: gunicorn joins 100 repeated 8 KB Accept lines into one value."""
    return ",".join(f"x{seed}/t{j}" for j in range(ranges))


def test_accept_cache_memory_is_bounded():
    from crane_fedora.negotiation import AcceptCache

    cache = AcceptCache()
    for seed in range(600):
        cache(_hostile_accept(seed, 2_000))
    kept = sum(len(key) for key in cache._parsed)
    assert kept <= 512 * 1024, kept


def test_accept_parse_of_a_huge_header_keeps_little():
    import tracemalloc

    from crane_fedora.negotiation import AcceptCache

    header = _hostile_accept(1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        quality = AcceptCache()(header)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert quality("x1/t0") == 1.0
    assert kept < 200_000, kept


def test_huge_accept_header_still_answers(client):
    header = "application/vnd.oci.image.manifest.v1+json," + _hostile_accept(2, 20_000)
    resp = client.get("/v2/fedora/busybox/manifests/latest", headers={"Accept": header})
    assert resp.status_code == 200  # the OCI manifest type comes first
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


# -- a malformed metadata file is rejected alone: the service starts and reloads go on -----------
def _native_doc(name: str, manifest: dict) -> str:
    import json

    return json.dumps(
        {
            "type": "fedora-mirror",
            "version": 5,
            "repo-registry-id": name,
            "urls": {"master": "https://dl.example.org/pub/containers/"},
            "manifests": {f"sha256:{HEX}": manifest},
            "blobs": {},
            "tags": {},
        }
    )


BAD_FILES = {
    "deep": "[" * 100_000,  # RecursionError from json.loads, not ValueError
    "surrogate": _native_doc(  # UnicodeEncodeError when the body is encoded
        "bad/surrogate",
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "body": "\ud800", "size": 1},
    ),
    "unhashable": _native_doc(  # TypeError: list in a frozenset
        "bad/unhashable", {"mediaType": [], "body": "x", "size": 1}
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_metadata_file_is_rejected_not_fatal(make_app, repo, data_dir, kind):
    from .conftest import refresh

    (data_dir / f"{kind}.json").write_text(BAD_FILES[kind])
    app = make_app()  # raised before the fix: no worker could boot
    client = app.test_client()
    assert client.get("/v2/fedora/busybox/manifests/latest").status_code == 200
    assert client.get("/healthz").json["errors"] == 1

    # and it does not block later reloads of other files
    from .builder import Native

    extra = Native("fresh/repo")
    extra.tag("latest", extra.image("1"))
    extra.write(data_dir)
    refresh(app)
    assert client.get("/v2/fresh/repo/manifests/latest").status_code == 200


# -- redirects stay inside the configured URL prefixes, with safe characters only ---------------
def _write_native(data_dir, name: str, master: str, mirror: str | None = None) -> None:
    from .builder import Native

    native = Native(name, master=master, mirror=mirror)
    native.tag("latest", native.image("1"))
    native.write(data_dir)


@pytest.mark.parametrize(
    "master",
    [
        "https://dl.example.org.evil.com/",  # a host-only prefix matched a longer host name
        "https://dl.example.org@evil.com/",  # ... or user info in front of another host
        "https://dl.example.org:443@evil.com/",
    ],
)
def test_host_only_allowed_prefix_does_not_admit_other_hosts(make_app, data_dir, master):
    _write_native(data_dir, "ok/repo", "https://dl.example.org/pub/")
    _write_native(data_dir, "evil/repo", master)
    client = make_app("[mirrors]\nallowed_url_prefixes = https://dl.example.org\n").test_client()
    assert client.get("/v2/ok/repo/blobs/" + _first_blob(client, "ok/repo")).status_code == 302
    resp = client.get("/v2/evil/repo/manifests/latest")
    assert resp.status_code == 404, resp.headers
    assert client.get("/healthz").json["errors"] == 1


def _first_blob(client, name: str) -> str:
    import json

    manifest = json.loads(client.get(f"/v2/{name}/manifests/latest").data)
    return manifest["config"]["digest"]


@pytest.mark.parametrize(
    "master",
    [
        "https://dl.example.org/\x00/",
        "https://dl.example.org/\t/",
        "https://dl.example.org/\x7f/",
        "https://dl.ex\u00e4mple.org/",  # not ASCII: a WSGI server cannot send it in Location
        "https://user:pw@dl.example.org/",
        "https:///nohost/",
    ],
)
def test_metadata_url_with_unsafe_characters_is_rejected(make_app, data_dir, master):
    _write_native(data_dir, "evil/repo", master)
    client = make_app().test_client()
    assert client.get("/v2/evil/repo/manifests/latest").status_code == 404
    assert client.get("/healthz").json["errors"] == 1


def test_pulp2_url_with_unsafe_characters_is_rejected(make_app, data_dir):
    import json

    doc = {
        "version": 2,
        "repo-registry-id": "evil/pulp2",
        "repository": "evil-pulp2",
        "url": "https://cdn.example.com/\x01x",
        "protected": False,
    }
    (data_dir / "evil.json").write_text(json.dumps(doc))
    client = make_app().test_client()
    assert client.get("/v2/evil/pulp2/manifests/latest").status_code == 404
    assert client.get("/healthz").json["errors"] == 1


def test_metadata_url_that_urlsplit_refuses_is_rejected(make_app, data_dir):
    _write_native(data_dir, "evil/repo", "https://[dl.example.org/")
    client = make_app().test_client()
    assert client.get("/v2/evil/repo/manifests/latest").status_code == 404
    assert client.get("/healthz").json["errors"] == 1


# -- an anonymous catalog page hides protected repositories without per-repository work ----------
def test_anonymous_catalog_hides_protected_repos(make_app, data_dir):
    """10,000 repositories, half protected: an anonymous page lists only public ones, an allowed
    client sees its protected ones. The cost per request (a slice of a tuple, not per-repository
    work) is in benchmarks/hotpath_bench.py."""
    import json

    from .builder import ANONYMOUS_CATALOG, protected_catalog

    registry = make_app(protected_catalog(data_dir)).extensions["crane_fedora"].registry
    environ = dict(ANONYMOUS_CATALOG)
    status, _headers, body = registry.handle(environ)
    assert status.startswith("200") and json.loads(body)["repositories"] == ["ns0/repo0", "ns0/repo100"]

    # an allowed client still sees its protected repositories
    trusted = {**environ, "REMOTE_ADDR": "127.0.0.1"}
    query = {**trusted, "QUERY_STRING": "n=20000"}
    names = json.loads(registry.handle(query)[2])["repositories"]
    assert "ns1/repo1" in names and "ns2/repo2" in names and "ns3/repo3" in names
    assert "ns5/repo5" not in names  # protected, no rule for this DN
    other = {**query, "HTTP_X_SSL_CLIENT_DN": "CN=b"}
    names = json.loads(registry.handle(other)[2])["repositories"]
    assert "ns1/repo1" not in names and "ns3/repo3" in names


# -- raw TCP against real gunicorn and granian: nothing a client sends takes a worker down -------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
DN = "CN=builder.example.org,O=Fedora Project"
HOSTILE = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /v2/\r\n\r\n",  # HTTP/0.9
    b"GET /v2/ HTTP/9.9\r\n\r\n",
    b"GET /v2/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/\xff\xfe/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/fedora/busybox/manifests/latest%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/legacy/hello/blobs/sha256:abc%0d%0aX-Evil:%201 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/legacy/hello/manifests/latest%0a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil.example/v2/legacy/hello/blobs/sha256:" + HEX.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET //evil.example/v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/" + b"a/" * 30_000 + b"tags/list HTTP/1.1\r\nHost: x\r\n\r\n",  # 60 KB request line
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 100_000 + b"\r\n\r\n",  # 100 KB header
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n",  # 1000 headers
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"PUT /v2/fedora/busybox/manifests/latest HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
    b"TRACE /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n" * 50,  # pipelined
    b"GET /v2/fedora/busybox/manifests/latest HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"Accept: " + b"x%d/y," % i * 700 + b"\r\n" for i in range(99))
    + b"\r\n",  # ~600 KB of Accept in one request
    b"GET /v2/ HTTP/1.1\r\nHost: x",  # never finished
    b"",  # connect and close
]


def _exchange(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    """Send ``data`` raw, return everything the server sends until it closes or goes quiet.

    No half-close: granian (hyper) drops a request whose client shut down its write side. The
    read stops after 0.3 s of silence once something arrived (keep-alive connections stay open).
    """
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may close early on an absurd request: fine
        chunks: list[bytes] = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                sock.settimeout(0.3)
        except OSError:
            pass
        return b"".join(chunks)


def _status_and_headers(raw: bytes) -> list[tuple[int, dict]]:
    """Every response in ``raw`` (pipelining), as (status, lower-cased headers)."""
    answers = []
    for block in raw.split(b"HTTP/1.1 ")[1:]:
        head = block.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        answers.append((int(lines[0][:3]), headers))
    return answers


class _Granian:
    """granian (the recommended server) in its own session; stopped by its process group."""

    def __init__(self, state, env: dict) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        from tests.harness.ports import free_port

        self.port = free_port()
        self.log_path = Path(state) / "granian.log"
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--workers", "1",
             "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(self.port),
             "crane_fedora.wsgi:application"],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start(self) -> None:
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _exchange(self.port, b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1):
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        self.stop()
        pytest.fail("granian did not start: " + self.log_path.read_text()[-2000:])

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module", params=["gunicorn", "granian"])
def crane_server(request, tmp_path_factory):
    """crane_fedora behind a real server, with a protected repository and a trusted proxy."""
    from tests.harness.gunicorn import Gunicorn

    from .builder import Native, busybox

    state = tmp_path_factory.mktemp(f"{request.param}-security")
    data = state / "metadata"
    data.mkdir()
    busybox()[0].write(data)
    secret = Native("secret/native", protected=True)
    secret.tag("latest", secret.image("1"))
    secret.write(data)
    for f in (ROOT / "fixtures" / "pulp2").glob("*/*.json"):
        if f.name != "dup-native.json":
            (data / f.name).write_bytes(f.read_bytes())
    conf = state / "crane.conf"
    conf.write_text(
        f"[general]\ndata_dir = {data}\ndata_dir_polling_interval = 0\n"
        f"[protected]\ntrusted_proxies = 127.0.0.1\nallow =\n    secret/* {DN}\n"
    )
    env = {"CRANE_CONFIG_PATH": str(conf)}
    if request.param == "granian":
        server = _Granian(state, env)
        try:  # also when start() fails: the process must not outlive the test
            server.start()
            server.kind = "granian"
            yield server
        finally:
            server.stop()
        return
    with Gunicorn(
        state,
        "crane_fedora.wsgi:application",
        env=env,
        workers=1,
        worker_class="gthread",
        threads=4,
        pythonpath=str(ROOT),
        timeout=10,
    ) as server:
        server.kind = "gunicorn"
        yield server


def _healthy(port: int) -> None:
    raw = _exchange(
        port, b"GET /v2/fedora/busybox/manifests/latest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]


@pytest.mark.services
@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_raw_socket_hostile_requests(crane_server, data):
    port = crane_server.port
    raw = _exchange(port, data)
    for status, headers in _status_and_headers(raw):
        assert status < 500 or status == 505, raw[:300]  # 505: gunicorn on HTTP/9.9
        assert "x-evil" not in headers, raw[:300]
        location = headers.get("location")
        if location:
            assert location.startswith(("https://cdn.example.com/pulp/docker/v2/", "/v2/")), location
    _healthy(port)


@pytest.mark.services
def test_raw_socket_underscore_dn_header_per_server(crane_server):
    """``X_SSL_Client_DN`` maps to the same WSGI environ key as ``X-SSL-Client-DN``.

    Why it matters: a proxy that overwrites ``X-SSL-Client-DN`` but passes the underscore
    spelling through would let a client choose its DN. gunicorn drops underscore headers;
    granian does not, and the app cannot tell the two apart, so docs/crane.md tells deployers
    to drop them at the proxy (nginx does by default, ``underscores_in_headers off``). This
    test pins both servers' behaviour: if granian changes, the documentation must change too.
    """
    port = crane_server.port
    path = b"/v2/secret/native/manifests/latest"
    ok = _exchange(
        port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-SSL-Client-DN: " + DN.encode() + b"\r\n\r\n"
    )
    assert ok.startswith(b"HTTP/1.1 200 "), ok[:200]  # the real header from a trusted proxy works
    spoof = _exchange(
        port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX_SSL_Client_DN: " + DN.encode() + b"\r\n\r\n"
    )
    expected = b"HTTP/1.1 200 " if crane_server.kind == "granian" else b"HTTP/1.1 404 "
    assert spoof.startswith(expected), (crane_server.kind, spoof[:200])


@pytest.mark.services
def test_raw_socket_worker_log_has_no_traceback(crane_server):
    for data in HOSTILE:
        _exchange(crane_server.port, data)
    _healthy(crane_server.port)
    log = crane_server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "error answering" not in log, log[-3000:]
    spawned = "Booting worker" if crane_server.kind == "gunicorn" else "Spawning worker"
    assert log.count(spawned) == 1, "a worker died and was replaced"


# -- a front end's "no certificate" placeholder is not a verified client DN ----------------------
@pytest.mark.parametrize("placeholder", ["(null)", "-", "none", "   "])
def test_no_certificate_placeholder_is_not_a_verified_client(make_app, data_dir, placeholder):
    """Apache ``RequestHeader set X-SSL-Client-DN "%{SSL_CLIENT_S_DN}s"`` sends ``(null)`` when
    the client has no certificate; with an ``allow`` rule of ``*`` (any verified client) that
    anonymous client was admitted. A subject DN always has an ``attribute=value``."""
    from .builder import Native

    native = Native("partner/shared", protected=True)
    native.tag("latest", native.image("1"))
    native.write(data_dir)
    client = make_app("[protected]\ntrusted_proxies = 127.0.0.1\nallow = partner/* *\n").test_client()
    path = "/v2/partner/shared/manifests/latest"
    via_proxy = {"headers": {"X-SSL-Client-DN": placeholder}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    assert client.get(path, **via_proxy).status_code == 404
    assert client.get(path, environ_base={"SSL_CLIENT_S_DN": placeholder}).status_code == 404
    assert "partner/shared" not in client.get("/v2/_catalog", **via_proxy).json["repositories"]
    real = {"headers": {"X-SSL-Client-DN": DN}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    assert client.get(path, **real).status_code == 200


# -- header bombs (100,000 media range parameters or ETags) are answered normally -----------------
def test_header_bombs_are_answered(app):
    """granian accepts ~400 KB of headers, gunicorn joins 100 repeated lines: both reach the app.

    A media range with 100,000 parameters and 100,000 ETags are answered like ordinary requests
    (what they cost per request is in benchmarks/hotpath_bench.py).
    """
    registry = app.extensions["crane_fedora"].registry
    params = "application/vnd.oci.image.index.v1+json" + ";q=1" * 100_000
    etags = ",".join(['"x"'] * 100_000)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v2/fedora/busybox/manifests/latest"}
    for i in range(20):
        status, _headers, _body = registry.handle(
            {**environ, "HTTP_ACCEPT": params + str(i), "HTTP_IF_NONE_MATCH": etags}
        )
        assert status.startswith("200")


# -- serve mode: an odd Pulp 2 repository id (NUL, newline, "..") is a 404, never a 500 ---------
@pytest.mark.parametrize("repository", ["bad\x00name", "bad\nname", "..", "a/../../etc"])
def test_serve_content_odd_repository_id_is_404(make_app, data_dir, tmp_path, repository):
    import json

    root = tmp_path / "content"
    (root / "ok").mkdir(parents=True)
    doc = {"version": 2, "repo-registry-id": "odd/pulp2", "repository": repository}
    doc.update(url="https://cdn.example.com/pulp/docker/v2/x/", protected=False)
    (data_dir / "odd.json").write_text(json.dumps(doc))
    client = make_app(f"[serve_content]\nenable = true\ncontent_dir_v2 = {root}\n").test_client()
    for path in (
        f"/v2/odd/pulp2/blobs/sha256:{HEX}",
        "/v2/odd/pulp2/manifests/latest",
        "/v2/odd/pulp2/tags/list",
    ):
        resp = client.get(path)
        assert resp.status_code == 404, (path, resp.status_code, resp.data)
        assert "X-Sendfile" not in resp.headers


# -- a very deep directory tree under data_dir does not stop the service -----------------------
def test_very_deep_data_dir_does_not_stop_the_service(make_app, repo, data_dir):
    levels = [data_dir]
    for _ in range(1100):  # 2,200 characters of path: fine for the kernel, not for recursion
        levels.append(levels[-1] / "d")
        levels[-1].mkdir()  # one level at a time: mkdir(parents=True) recurses too
    (levels[-1] / "lost.json").write_text("{}")
    try:
        client = make_app().test_client()  # raised RecursionError before
        assert client.get("/v2/fedora/busybox/manifests/latest").status_code == 200
    finally:  # bottom-up: shutil.rmtree (pytest's tmp cleanup) would hit the recursion limit too
        (levels[-1] / "lost.json").unlink()
        for level in reversed(levels[1:]):
            level.rmdir()


def test_json_errors_and_lists_are_never_sniffed(make_app, repo, fast_path):
    """Error bodies echo client input (a name, a tag): browsers must not sniff them as HTML."""
    c = make_app().test_client()
    for path in (
        "/v2/fedora/busybox/manifests/%3Cscript%3E",
        "/v2/nope/tags/list",
        "/v2/fedora/busybox/tags/list",
        "/v2/_catalog",
        "/nowhere",
    ):
        r = c.get(path)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (path, r.status_code, dict(r.headers))
        assert r.headers["Content-Type"].startswith("application/json"), path
