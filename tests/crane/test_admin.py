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
    """Public repositories, with Crane's ``protected`` flag; a protected one stays hidden from an
    anonymous client, exactly as in ``/v2/_catalog`` (Crane listed it to anyone)."""
    r = client.get("/crane/repositories/v2", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json["fedora/busybox"] == {"protected": False}
    assert "secret/pulp2" not in r.json
    catalog = client.get("/v2/_catalog").json["repositories"]
    assert sorted(r.json) == sorted(catalog)


def test_crane_repositories_v2_lists_protected_to_an_admitted_client(make_app, repo, pulp2_dir):
    dn = "CN=admin,O=Fedora"
    c = make_app(f"[protected]\nallow = secret/* {dn}\n").test_client()
    anonymous = c.get("/crane/repositories/v2").json
    admitted = c.get("/crane/repositories/v2", environ_base={"SSL_CLIENT_S_DN": dn}).json
    assert "secret/pulp2" not in anonymous
    assert admitted["secret/pulp2"] == {"protected": True}
    assert set(admitted) - set(anonymous) == {n for n in admitted if admitted[n]["protected"]}


def test_other_paths_json(client):
    for method, path in (
        ("GET", "/nothing"),
        ("GET", "/static/x.css"),
        ("POST", "/healthz"),
        ("GET", "/crane"),
    ):
        r = client.open(path, method=method)
        assert r.status_code in (404, 405)
        assert r.headers["Content-Type"] == "application/json"
        assert "errors" in r.json
