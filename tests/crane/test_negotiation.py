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
    assert q(S2) == 0.0  # a range with a malformed q is ignored (RFC 9110): it adds nothing
    q = AcceptCache()(f"{OCI};q=7")
    assert q(OCI) == 1.0  # q out of range: ignored too, and with no range left, anything goes


def test_cache_is_bounded_and_reused():
    cache = AcceptCache(limit=2)
    first = cache("a/b")
    assert cache("a/b") is first
    cache("c/d")
    cache("e/f")  # over the limit: cleared, then stored
    assert cache("a/b") is not first


def test_only_the_first_kib_is_read_and_cached():
    cache = AcceptCache()
    header = f"{OCI}, " + ", ".join(f"x/t{i}" for i in range(1000)) + f", {S2}"
    q = cache(header)
    assert q(OCI) == 1.0 and q("x/t1") == 1.0
    assert q(S2) == 0.0  # beyond the first KiB
    assert all(len(key) <= 1024 for key in cache._parsed)
    assert cache(header) is q  # the bounded value is the cache key
