"""GET /metrics: Prometheus text format, what it counts, off switch, and several worker processes."""

from __future__ import annotations

import http.client
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.gunicorn import Gunicorn
from tests.harness.ports import LOOPBACK

from .builder import Native
from .conftest import refresh

REPO = "/v2/fedora/busybox"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels): parsing fails on a malformed exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_by_endpoint_and_status(make_app, repo):
    client = make_app().test_client()
    assert client.get(f"{REPO}/manifests/latest").status_code == 200
    assert client.get(f"{REPO}/manifests/nosuchtag").status_code == 404
    assert client.get(f"{REPO}/tags/list").status_code == 200
    assert client.get("/v2/").status_code == 200
    assert client.get("/healthz").status_code == 200
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain; version=")
    text = resp.get_data(as_text=True)
    assert value(text, "crane_requests_total", endpoint="manifest", status="200") == 1
    assert value(text, "crane_requests_total", endpoint="manifest", status="404") == 1
    assert value(text, "crane_requests_total", endpoint="tags", status="200") == 1
    assert value(text, "crane_requests_total", endpoint="base", status="200") == 1
    assert value(text, "crane_requests_total", endpoint="healthz", status="200") == 1


def test_endpoint_labels_by_path_shape():
    from crane_fedora.metrics import endpoint_of

    assert endpoint_of("/v2/a/b/manifests/x") == "manifest"
    assert endpoint_of("/v2/a/blobs/sha256:00") == "blob"
    assert endpoint_of("/v2/a/tags/list") == "tags"
    assert endpoint_of("/v2/_catalog") == "catalog"
    assert endpoint_of("/v2/") == endpoint_of("/v2") == "base"
    assert endpoint_of("/v2/a/b") == endpoint_of("/v2x") == "v2_other"
    assert endpoint_of("/index/static") == "flatpak_index"
    assert endpoint_of("/extensions/v2/a/signatures/sha256:00") == "signatures"
    assert endpoint_of("/") == endpoint_of("/v1/_ping") == "other"


def test_labels_never_carry_client_input(make_app, repo):
    client = make_app().test_client()
    client.get('/v2/evil"name/manifests/x{y}')
    client.get("/v2/fedora/busybox/whatever/x")
    client.get("/some/path/nobody/knows")
    text = client.get("/metrics").get_data(as_text=True)
    endpoints = {
        dict(labels)["endpoint"] for (name, labels) in samples(text) if name == "crane_requests_total"
    }
    assert endpoints <= {
        "manifest",
        "blob",
        "tags",
        "catalog",
        "base",
        "v2_other",
        "metrics",
        "healthz",
        "other",
    }
    assert "evil" not in text and "nobody" not in text


def test_blob_redirects_by_target(make_app, repo):
    client = make_app().test_client()
    native, d = repo
    settled = native.manifests[d["amd64"]]["blobs"][1]
    fresh = native.manifests[d["fresh"]]["blobs"][1]
    for blob in (settled, settled, fresh):
        assert client.get(f"{REPO}/blobs/{blob}").status_code == 302
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "crane_blob_redirects_total", target="mirror") == 2
    assert value(text, "crane_blob_redirects_total", target="master") == 1
    assert value(text, "crane_requests_total", endpoint="blob", status="302") == 3


def test_snapshot_age_size_reloads_and_rejected_files(make_app, repo, data_dir):
    app = make_app()
    client = app.test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "crane_index_repositories", kind="native") == 1
    assert value(text, "crane_metadata_rejected_files") == 0
    assert value(text, "crane_metadata_reload_duration_seconds_count") == 0
    age = value(text, "crane_metadata_snapshot_age_seconds")
    assert 0 <= age < 3600

    two = Native("fedora/two")
    two.tag("x", two.image("1")).write(data_dir)
    (data_dir / "broken.json").write_text("{not json")
    assert refresh(app)
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "crane_index_repositories", kind="native") == 2
    assert value(text, "crane_metadata_files") == 3
    assert value(text, "crane_metadata_rejected_files") == 1
    assert value(text, "crane_metadata_reload_duration_seconds_count") == 1
    assert value(text, "crane_metadata_reload_duration_seconds_sum") > 0


def test_metrics_can_be_switched_off(make_app, repo):
    app = make_app("[metrics]\nenable = false\n")
    client = app.test_client()
    assert client.get(f"{REPO}/manifests/latest").status_code == 200
    resp = client.get("/metrics")
    assert resp.status_code == 404
    assert resp.json["errors"][0]["code"] == "NOT_FOUND"
    assert app.extensions["crane_fedora"].metrics is None


# -- several worker processes: every scrape adds up all workers' counters --------------------------
def _get(port: int, path: str) -> tuple[int, str]:
    """GET on a fresh connection, so successive requests spread over the worker processes."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


@pytest.mark.services
@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_counts_add_up_over_worker_processes(tmp_path: Path, repo, data_dir: Path, server: str) -> None:
    from tests.harness.granian import Granian

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    conf = tmp_path / "crane.conf"
    conf.write_text(f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 0\n")
    cls = Gunicorn if server == "gunicorn" else Granian
    env = {"CRANE_CONFIG_PATH": str(conf), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    with cls(
        tmp_path / server, "crane_fedora.wsgi:application", env=env, workers=3, ready_path="/healthz"
    ) as srv:
        before = [json.loads(_get(srv.port, "/healthz")[1]) for _ in range(3)]
        assert all(doc["repositories"] == 1 for doc in before)
        # Requests in concurrent batches until counters of at least two worker processes were
        # written (the event that makes the sum meaningful: one server may favour one worker).
        sent = 0
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(8) as pool:
            while len({p.name.rsplit("_", 1)[1] for p in multiproc.glob("counter_*.db")}) < 2:
                assert time.monotonic() < deadline, sorted(os.listdir(multiproc))
                batch = list(pool.map(lambda _: _get(srv.port, f"{REPO}/manifests/latest")[0], range(16)))
                assert batch == [200] * 16
                sent += 16
                time.sleep(0.2)
        # Each worker flushes its tallies every second: wait until a scrape shows all of them ...
        deadline = time.monotonic() + 15
        while (
            value(_get(srv.port, "/metrics")[1], "crane_requests_total", endpoint="manifest", status="200")
            < sent
        ):
            assert time.monotonic() < deadline, f"the workers' counts never added up to {sent}"
            time.sleep(0.2)
        # ... and every worker answering a scrape reports the same total
        scrapes = [_get(srv.port, "/metrics")[1] for _ in range(6)]
    for text in scrapes:
        assert value(text, "crane_requests_total", endpoint="manifest", status="200") == sent
        assert value(text, "crane_index_repositories", kind="native") == 1
