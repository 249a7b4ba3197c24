"""Accept header parsing with q-values and wildcards.

Parsing is Werkzeug's :func:`~werkzeug.http.parse_accept_header` (RFC 9110: quoted strings,
parameters, and a range with an invalid ``q`` is ignored). Why a cache in front of it: clients
send a handful of distinct Accept values, so each is parsed once per application and the request
path does one dict look-up. benchmarks/hotpath_bench.py measures both: Werkzeug's parse of
podman's Accept costs several times a whole manifest GET, a cache hit well under 1% of one.
The look-up is our own two dicts rather than ``MIMEAccept.quality``, which scans and re-normalises
every range on each call (two calls per manifest GET).
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.http import parse_accept_header

Acceptor = Callable[[str], float]

#: Characters of an Accept header that are read; the rest is ignored. Real clients send < 400
#: (podman ~330). A hostile client can send hundreds of KB (WSGI servers join repeated headers):
#: parsing all of it cost ~0.3 s and MBs, and caching it 512 x that. This bounds both the parse
#: and the cache (512 entries x 1 KiB).
MAX_PARSED_LEN = 1024
#: Media ranges kept per header (real clients send fewer than ten).
MAX_RANGES = 64


def _anything(media_type: str) -> float:
    return 1.0


def _bounded(header: str) -> str:
    """``header`` cut to :data:`MAX_PARSED_LEN`, without the range the cut went through."""
    return header[: MAX_PARSED_LEN + 1].rpartition(",")[0]


def _parse(header: str) -> Acceptor:
    exact: dict[str, float] = {}
    wildcard: dict[str, float] = {}  # "*/*" or "application/*"
    for item, q in parse_accept_header(header)[:MAX_RANGES]:
        media_type = item.partition(";")[0].strip().lower()  # parameters do not select a manifest
        if "/" not in media_type:
            continue
        table = wildcard if media_type.endswith("/*") else exact
        table[media_type] = max(float(q), table.get(media_type, 0.0))
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
    """Parsed Accept headers by (bounded) value; bounded in entries and size, owned by one application."""

    def __init__(self, limit: int = 512) -> None:
        self._parsed: dict[str, Acceptor] = {}
        self._limit = limit

    def __call__(self, header: str | None) -> Acceptor:
        """Return ``quality(media_type)`` for an Accept header; missing or empty = accept anything."""
        if not header:
            return _anything
        if len(header) > MAX_PARSED_LEN:
            header = _bounded(header)  # before the look-up: never hash a huge header
        fn = self._parsed.get(header)
        if fn is None:
            if len(self._parsed) >= self._limit:
                self._parsed.clear()
            fn = self._parsed[header] = _parse(header)
        return fn
