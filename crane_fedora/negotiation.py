"""Accept header parsing with q-values and wildcards.

Why a cache: clients send a handful of distinct Accept values, so each is parsed once per
process and the request path does one dict look-up.
"""

from __future__ import annotations

from collections.abc import Callable

Acceptor = Callable[[str], float]
_CACHE: dict[str, Acceptor] = {}
_CACHE_MAX = 512


def _anything(media_type: str) -> float:
    return 1.0


def _parse(header: str) -> Acceptor:
    exact: dict[str, float] = {}
    wildcard: dict[str, float] = {}  # "*/*" or "application/*"
    for item in header.split(","):
        parts = item.split(";")
        media_type = parts[0].strip().lower()
        if not media_type:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed q never widens what the client accepts
        table = wildcard if media_type.endswith("/*") else exact
        table[media_type] = max(q, table.get(media_type, 0.0))
    if not exact and not wildcard:
        return _anything

    def quality(media_type: str) -> float:
        if media_type in exact:
            return exact[media_type]
        major = media_type.split("/", 1)[0] + "/*"
        if major in wildcard:
            return wildcard[major]
        return wildcard.get("*/*", 0.0)

    return quality


def acceptor(header: str | None) -> Acceptor:
    """Return ``quality(media_type)`` for an Accept header; missing or empty = accept anything."""
    if not header:
        return _anything
    fn = _CACHE.get(header)
    if fn is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        fn = _CACHE[header] = _parse(header)
    return fn
