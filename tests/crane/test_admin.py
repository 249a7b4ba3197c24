"""healthz, Crane's /v1/_ping, the dead v1 API and the admin JSON view."""

from __future__ import annotations


def test_healthz_counts(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    doc = r.json
    assert doc["status"] == "ok"
    assert doc["repositories"] == doc["native"] + doc["pulp2"] >= 5
    assert doc["native"] == 1 and doc["errors"] == 0


def test_v1_ping_headers(client):
    r = client.get("/v1/_ping")
    assert r.status_code == 200 and r.data == b"true"
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Docker-Registry-Version"] == "0.6.6"
    assert r.headers["X-Docker-Registry-Config"] == "common"
    assert r.headers["X-Docker-Registry-Standalone"] == "True"


def test_v1_api_is_dead_json(client):
    for path in ("/v1/repositories/fedora/busybox/images", "/v1/search?q=x", "/v1/users/"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.headers["Content-Type"] == "application/json"
        assert r.json["errors"][0]["code"] == "UNSUPPORTED"


def test_crane_repositories_v2(client):
    r = client.get("/crane/repositories/v2", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json["fedora/busybox"] == {"protected": False}
    assert r.json["secret/pulp2"] == {"protected": True}


def test_other_paths_json(client):
    for method, path in (("GET", "/"), ("GET", "/static/x.css"), ("POST", "/healthz"), ("GET", "/crane")):
        r = client.open(path, method=method)
        assert r.status_code in (404, 405)
        assert r.headers["Content-Type"] == "application/json"
        assert "errors" in r.json
