"""Behind a real WSGI server (gunicorn): HEAD lengths, redirects and keep-alive as clients see them."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .builder import busybox

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services  # starts a real gunicorn (by itself, on a free port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("metadata")
    native, digests = busybox()
    native.write(data)
    conf = data.parent / "crane.conf"
    conf.write_text(f"[general]\ndata_dir = {data}\ndata_dir_polling_interval = 1\n")
    port = _free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "crane_fedora.wsgi:application",
        ],
        env={**os.environ, "CRANE_CONFIG_PATH": str(conf)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("gunicorn did not start: " + proc.stderr.read().decode()[-2000:])
    yield port, native, digests, data
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def test_keepalive_get_head_redirect(server):
    port, native, d, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = native.manifests[d["index"]]["body"].encode()
    conn.request("HEAD", "/v2/fedora/busybox/manifests/latest")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    assert r.getheader("Content-Length") == str(len(body))
    assert r.getheader("Docker-Content-Digest") == d["index"]
    conn.request("GET", "/v2/fedora/busybox/manifests/latest")  # same connection
    r = conn.getresponse()
    assert r.status == 200 and r.read() == body
    cfg = native.manifests[d["amd64"]]["blobs"][0]
    conn.request("GET", f"/v2/fedora/busybox/blobs/{cfg}")
    r = conn.getresponse()
    r.read()
    assert r.status == 302 and r.getheader("Location").endswith(cfg.split(":")[1])
    conn.request("HEAD", f"/v2/fedora/busybox/blobs/{cfg}")
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    assert r.getheader("Content-Length") == str(native.blobs[cfg]["size"])
    conn.request("DELETE", "/v2/fedora/busybox/manifests/latest")
    r = conn.getresponse()
    assert r.status == 405 and r.getheader("Content-Type") == "application/json"
    r.read()
    conn.close()


def test_poller_runs_in_the_worker(server):
    port, _, _, data = server
    from .builder import Native

    n = Native("late/repo")
    n.tag("x", n.image("1"))
    n.write(data)
    deadline = time.monotonic() + 10
    status = 0
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2/late/repo/manifests/x")
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200
