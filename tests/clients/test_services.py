"""The harness's own services: nginx (types, Range, hidden files, extra locations, reload),
gunicorn (TLS, env, workers), readiness errors and process-group cleanup."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness.gunicorn import Gunicorn
from tests.harness.nginx import Nginx
from tests.harness.ports import LOOPBACK, free_port, port_open
from tests.harness.registry import Registry
from tests.harness.service import ServiceError
from tests.harness.tls import TLSFiles

pytestmark = pytest.mark.services


def fetch(
    url: str, ca: TLSFiles, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict, bytes]:
    ctx = ssl.create_default_context(cafile=str(ca.ca_cert))
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    blob = root / "blobs" / "sha256" / "ab" / ("ab" + "0" * 62)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(bytes(range(256)) * 4)
    (root / "hello.txt").write_text("hello\n")
    (root / ".tmp-partial").write_text("never served")
    return root


def test_nginx_serves_tree_with_range_and_octet_stream(tls_ca: TLSFiles, tree: Path, tmp_path: Path) -> None:
    with Nginx(tmp_path / "ng", tree, tls=tls_ca, url_prefix="/pub/containers/") as ng:
        assert ng.url.startswith("https://127.0.0.1:") and ng.url.endswith("/pub/containers/")
        status, headers, body = fetch(ng.url + "blobs/sha256/ab/ab" + "0" * 62, tls_ca)
        assert (status, headers["Content-Type"], len(body)) == (200, "application/octet-stream", 1024)
        status, headers, _ = fetch(ng.url + "hello.txt", tls_ca)
        assert headers["Content-Type"] == "application/octet-stream"  # types {}: no sniffing by extension
        status, headers, body = fetch(
            ng.url + "blobs/sha256/ab/ab" + "0" * 62, tls_ca, {"Range": "bytes=1000-"}
        )
        assert (status, headers["Content-Range"], body) == (
            206,
            "bytes 1000-1023/1024",
            (bytes(range(256)) * 4)[1000:],
        )
        assert fetch(ng.url + ".tmp-partial", tls_ca)[0] == 404
        assert fetch(f"https://{ng.host}/hello.txt", tls_ca)[0] == 404  # only the prefix is served
        assert '"GET /pub/containers/hello.txt HTTP/1.1" 200' in ng.access_log_path.read_text()


def test_nginx_extra_locations_and_reload(tls_ca: TLSFiles, tree: Path, tmp_path: Path) -> None:
    """A mirror that has not got a shard yet: 404 for it, added and removed at runtime."""
    with Nginx(tmp_path / "mirror", tree) as ng:
        url = ng.url + "blobs/sha256/ab/ab" + "0" * 62
        assert urllib.request.urlopen(url, timeout=5).status == 200
        ng.extra_locations = "location /blobs/sha256/ab/ { return 404; }"
        ng.reload()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=5)
        assert e.value.code == 404
        ng.extra_locations = ""
        ng.reload()
        assert urllib.request.urlopen(url, timeout=5).status == 200


def test_gunicorn_tls_env_and_workers(tls_ca: TLSFiles, tmp_path: Path) -> None:
    with Gunicorn(
        tmp_path / "gu",
        "tests.harness.probe_app:application",
        tls=tls_ca,
        env={"HARNESS_PROBE": "x1"},
        workers=2,
        pythonpath=str(Path(__file__).resolve().parents[2]),
    ) as gu:
        assert fetch(gu.url + "/v2/", tls_ca)[:1] == (200,)
        assert json.loads(fetch(gu.url + "/env/HARNESS_PROBE", tls_ca)[2]) == {"value": "x1"}
        pids = {json.loads(fetch(gu.url + "/pid", tls_ca)[2])["pid"] for _ in range(20)}
        master = gu.pid
        assert master is not None and pids and master not in pids
    # stop() killed the whole group: no worker survives
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not port_open(LOOPBACK, gu.port)


def test_startup_failure_reports_log_tail(tmp_path: Path) -> None:
    """A port already taken makes the registry exit; the error carries its log."""
    with Registry(tmp_path / "a") as first:
        second = Registry(tmp_path / "b", port=first.port)
        with pytest.raises(ServiceError, match="address already in use"):
            second.start()
        assert not second.running()


def test_free_ports_differ() -> None:
    assert len({free_port() for _ in range(20)}) > 1
