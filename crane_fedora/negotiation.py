"""Accept header parsing with q-values and wildcards.

Why a cache: clients send a handful of distinct Accept values, so each is parsed once per
application and the request path does one dict look-up.
"""

from __future__ import annotations

from collections.abc import Callable

Acceptor = Callable[[str], float]

#: Media ranges read per Accept header. Real clients send fewer than ten; a hostile client can send
#: hundreds of KB (WSGI servers join repeated headers), and parsing all of it cost ~0.3 s and MBs.
MAX_RANGES = 64
#: Longer headers are parsed every time instead of cached, so the cache holds at most
#: ``limit`` x this many characters (before: 512 x whatever the client sent).
MAX_CACHED_LEN = 2048
#: Parameters read per media range (only ``q`` matters; ``a/b;q=1;q=1;...`` cost ~30 ms).
MAX_PARAMS = 8


def _anything(media_type: str) -> float:
    return 1.0


def _parse(header: str) -> Acceptor:
    exact: dict[str, float] = {}
    wildcard: dict[str, float] = {}  # "*/*" or "application/*"
    for item in header.split(",", MAX_RANGES)[:MAX_RANGES]:
        parts = item.split(";", MAX_PARAMS + 1)[: MAX_PARAMS + 1]
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


class AcceptCache:
    """Parsed Accept headers by raw value; bounded in entries and size, owned by one application."""

    def __init__(self, limit: int = 512) -> None:
        self._parsed: dict[str, Acceptor] = {}
        self._limit = limit

    def __call__(self, header: str | None) -> Acceptor:
        """Return ``quality(media_type)`` for an Accept header; missing or empty = accept anything."""
        if not header:
            return _anything
        if len(header) > MAX_CACHED_LEN:
            return _parse(header)
        fn = self._parsed.get(header)
        if fn is None:
            if len(self._parsed) >= self._limit:
                self._parsed.clear()
            fn = self._parsed[header] = _parse(header)
        return fn
