"""Crane's CDN token algorithm and rewrite, with its test vector."""

from __future__ import annotations

from crane_fedora.cdn import auth_token, finish_url
from crane_fedora.config import parse_config


def test_crane_test_vector():
    assert auth_token("/content/repo/manifests/123", bytes.fromhex("abc123"), 1933027200, "sha256") == (
        "exp=1933027200~hmac=d039ac10e019fd13824a3f861b4f55df40e2a402d102b5266194fff6f3a24ed0"
    )


def test_finish_url_uses_vector_through_config():
    cfg = parse_config("[cdn]\nurl_auth_secret = abc123\nurl_auth_ttl = 300\n")
    url = finish_url("https://cdn.example.org/content/repo/manifests/123", cfg, now=1933027200 - 300)
    assert url == (
        "https://cdn.example.org/content/repo/manifests/123?_auth_="
        "exp=1933027200~hmac=d039ac10e019fd13824a3f861b4f55df40e2a402d102b5266194fff6f3a24ed0"
    )


def test_existing_query_gets_ampersand():
    cfg = parse_config("[cdn]\nurl_auth_secret = abc123\nurl_auth_param = tok\n")
    url = finish_url("https://h/p?x=1", cfg, now=0)
    assert url.startswith("https://h/p?x=1&tok=exp=300~hmac=")


def test_rewrite_every_occurrence_and_algos():
    cfg = parse_config("[cdn]\nurl_match = a.example\nurl_replace = b.example\n")
    assert finish_url("https://a.example/x/a.example", cfg) == "https://b.example/x/b.example"
    for algo, hexlen in (("sha1", 40), ("md5", 32)):
        tok = auth_token("/p", b"k", 1, algo)
        assert len(tok.split("hmac=")[1]) == hexlen


def test_no_cdn_config_is_identity():
    assert finish_url("https://h/p", parse_config("")) == "https://h/p"
