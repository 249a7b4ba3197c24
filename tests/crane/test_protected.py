"""Protected repositories: hidden (404 NAME_UNKNOWN) unless a verified client DN is allowed."""

from __future__ import annotations

import pytest

from .builder import Native

DN = "CN=builder.example.org,O=Fedora Project"
CFG = f"""[protected]
trusted_proxies = 127.0.0.1/32, ::1
allow =
    secret/* {DN}
    partner/shared *
"""


@pytest.fixture
def papp(make_app, data_dir, pulp2_dir):
    for name in ("secret/native", "partner/shared", "open/repo"):
        n = Native(name, protected=name != "open/repo")
        n.tag("latest", n.image("1"))
        n.write(data_dir)
    return make_app(CFG)


def status_with_dn(app, path: str, dn: str, remote: str, header: str = "X-SSL-Client-DN") -> int:
    """Status of ``GET path`` carrying the proxy header ``header: dn``, sent from ``remote``."""
    r = app.test_client().get(path, headers={header: dn}, environ_base={"REMOTE_ADDR": remote})
    return r.status_code


def test_anonymous_sees_same_404_as_unknown(papp):
    c = papp.test_client()
    denied = c.get("/v2/secret/native/manifests/latest")
    unknown = c.get("/v2/secret/nothere/manifests/latest")
    assert denied.status_code == unknown.status_code == 404
    assert denied.json["errors"][0]["code"] == "NAME_UNKNOWN"
    assert denied.json["errors"][0]["message"] == unknown.json["errors"][0]["message"]
    assert c.get("/v2/secret/native/tags/list").status_code == 404
    assert c.get("/v2/secret/pulp2/manifests/v2tag").status_code == 404  # Pulp 2 protected too
    assert c.get("/v2/open/repo/manifests/latest").status_code == 200


def test_header_from_trusted_proxy(papp):
    assert status_with_dn(papp, "/v2/secret/native/manifests/latest", DN, "127.0.0.1") == 200
    assert status_with_dn(papp, "/v2/secret/pulp2/manifests/v2tag", DN, "127.0.0.1") == 302


def test_header_from_untrusted_peer_ignored(papp):
    assert status_with_dn(papp, "/v2/secret/native/manifests/latest", DN, "192.0.2.7") == 404


def test_wrong_dn_and_empty_dn(papp):
    assert status_with_dn(papp, "/v2/secret/native/manifests/latest", "CN=other", "127.0.0.1") == 404
    assert status_with_dn(papp, "/v2/secret/native/manifests/latest", "", "127.0.0.1") == 404


def test_wsgi_environ_dn(papp):
    c = papp.test_client()
    assert (
        c.get(
            "/v2/secret/native/manifests/latest",
            environ_base={"SSL_CLIENT_S_DN": DN, "REMOTE_ADDR": "192.0.2.7"},
        ).status_code
        == 200
    )


def test_any_verified_client_rule(papp):
    c = papp.test_client()
    env = {"SSL_CLIENT_S_DN": "CN=whoever"}
    assert c.get("/v2/partner/shared/manifests/latest", environ_base=env).status_code == 200
    assert c.get("/v2/secret/native/manifests/latest", environ_base=env).status_code == 404


def test_catalog_filtered_per_client(papp):
    c = papp.test_client()
    anon = c.get("/v2/_catalog").json["repositories"]
    assert "secret/native" not in anon and "partner/shared" not in anon and "open/repo" in anon
    mine = c.get("/v2/_catalog", environ_base={"SSL_CLIENT_S_DN": DN}).json["repositories"]
    assert "secret/native" in mine and "secret/pulp2" in mine and "partner/shared" in mine


def test_no_trusted_proxies_means_header_never_trusted(make_app, data_dir):
    n = Native("secret/x", protected=True)
    n.tag("latest", n.image("1"))
    n.write(data_dir)
    app = make_app(f"[protected]\nallow = secret/* {DN}\n")
    assert status_with_dn(app, "/v2/secret/x/manifests/latest", DN, "127.0.0.1") == 404


def test_custom_header_name(make_app, data_dir):
    n = Native("secret/x", protected=True)
    n.tag("latest", n.image("1"))
    n.write(data_dir)
    app = make_app(
        f"[protected]\ndn_header = X-Client-Subject\ntrusted_proxies = 10.0.0.0/8\nallow = secret/* {DN}\n"
    )
    assert status_with_dn(app, "/v2/secret/x/manifests/latest", DN, "10.1.2.3", "X-Client-Subject") == 200
