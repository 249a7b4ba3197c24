"""``GET /index/static`` and ``/index/dynamic``: the Flatpak registry index (docs/flatpak.md).

:func:`handle` works on the raw WSGI environ, like the registry API, so the fast path
(:mod:`crane_fedora.fastpath`) answers the hot ``/index/static`` query without Flask; the blueprint
serves the same function when the fast path is off. The answers themselves are precomputed or
cached per metadata snapshot (:mod:`crane_fedora.metadata.flatpak`).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from crane_fedora.config import Config
from crane_fedora.metadata.flatpak import FlatpakIndex, QueryError
from crane_fedora.metadata.store import MetadataStore
from crane_fedora.protected import visible_names
from crane_fedora.registry import JSON, NOSNIFF, STATUS, Reply, _etag_matches, error_body

bp = Blueprint("flatpak", __name__)
PATHS = ("/index/static", "/index/dynamic")
ALLOW = "GET, HEAD"


def _error(status: int, code: str, message: str, detail: object = None, extra: tuple = ()) -> Reply:
    body = error_body(code, message, detail)
    return (
        STATUS[status],
        [("Content-Type", JSON), ("Content-Length", str(len(body))), NOSNIFF, *extra],
        body,
    )


def _accepts_gzip(header: str | None) -> bool:
    """True if Accept-Encoding admits gzip (``gzip;q=0`` does not)."""
    if not header or "gzip" not in header:
        return False
    for item in header.split(",", 16)[:16]:
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def handle(environ: dict, config: Config, store: MetadataStore) -> Reply:
    """Answer one request for :data:`PATHS`; never raises for client input."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method != "GET" and method != "HEAD":
        return _error(405, "UNSUPPORTED", "method not allowed", {"method": method[:20]}, (("Allow", ALLOW),))
    index = store.index
    if not config.flatpak_index:
        return _error(404, "NOT_FOUND", "the Flatpak index is disabled on this registry")
    flatpak = index.flatpak or FlatpakIndex(registry=config.flatpak_registry)
    query = flatpak.query(environ.get("QUERY_STRING", ""))
    if isinstance(query, QueryError):
        return _error(400, query.code, query.message, query.detail)
    visible = None
    if len(index.public_names) != len(index.all_names):
        names = visible_names(index, environ, config)
        if len(names) != len(index.public_names):
            visible = frozenset(n for n in names if index.repos[n].protected)
    answer = flatpak.answer(query, visible)
    gz = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
    etag = answer.etag_gzip if gz else answer.etag
    static = environ.get("PATH_INFO") == "/index/static"
    if answer.private:
        cache = "private, no-cache"
    elif static and config.flatpak_max_age > 0:
        cache = f"public, max-age={config.flatpak_max_age}"
    else:
        cache = "public, no-cache"
    headers = [("ETag", etag), ("Cache-Control", cache), ("Vary", "Accept-Encoding")]
    inm = environ.get("HTTP_IF_NONE_MATCH")
    # Either representation's ETag revalidates: the document is the same.
    if inm and (_etag_matches(inm, answer.etag) or _etag_matches(inm, answer.etag_gzip)):
        return STATUS[304], headers, b""
    body = answer.gzipped if gz else answer.body
    headers += [("Content-Type", JSON), ("Content-Length", str(len(body))), NOSNIFF]
    if gz:
        headers.append(("Content-Encoding", "gzip"))
    return STATUS[200], headers, b"" if method == "HEAD" else body


@bp.route("/index/static", methods=["GET", "HEAD"])
@bp.route("/index/dynamic", methods=["GET", "HEAD"])
def index_view() -> Response:
    """The Flask route (fast path off); same answers as :func:`handle` under the fast path."""
    state = current_app.extensions["crane_fedora"]
    status, headers, body = handle(request.environ, state.config, state.store)
    resp = Response(body, status=int(status[:3]))
    resp.headers.clear()
    for key, value in headers:
        resp.headers.add(key, value)
    return resp
