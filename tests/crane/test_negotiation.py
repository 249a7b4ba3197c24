"""Accept parsing: q-values, wildcards, malformed input, the per-app cache."""

from __future__ import annotations

from crane_fedora.negotiation import AcceptCache

OCI = "application/vnd.oci.image.manifest.v1+json"
S2 = "application/vnd.docker.distribution.manifest.v2+json"


def test_missing_or_empty_accepts_anything():
    cache = AcceptCache()
    assert cache(None)(OCI) == 1.0
    assert cache("")(S2) == 1.0
    assert cache(" , ,")(S2) == 1.0


def test_q_values_and_wildcards():
    q = AcceptCache()(f"{OCI};q=0.3, application/*;q=0.2, */*;q=0.1, text/plain;q=0")
    assert q(OCI) == 0.3
    assert q(S2) == 0.2  # application/* beats */*
    assert q("image/png") == 0.1
    assert q("text/plain") == 0.0


def test_case_params_and_bad_q():
    q = AcceptCache()(f"{OCI.upper()}; charset=utf-8, {S2};q=high")
    assert q(OCI) == 1.0
    assert q(S2) == 0.0  # a malformed q never widens acceptance
    q = AcceptCache()(f"{OCI};q=7")
    assert q(OCI) == 1.0  # clamped


def test_cache_is_bounded_and_reused():
    cache = AcceptCache(limit=2)
    first = cache("a/b")
    assert cache("a/b") is first
    cache("c/d")
    cache("e/f")  # over the limit: cleared, then stored
    assert cache("a/b") is not first
