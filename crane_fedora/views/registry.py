"""``/v2`` as a Flask blueprint, for deployments that turn the WSGI fast path off."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from crane_fedora.fastpath import file_iter
from crane_fedora.registry import EXTENSIONS_PREFIX, FileBody

bp = Blueprint("registry", __name__)
METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def to_response(status: str, headers: list[tuple[str, str]], body: object) -> Response:
    """Wrap a registry reply without letting Werkzeug rewrite its Content-Length (HEAD)."""
    if isinstance(body, FileBody):
        resp = Response(file_iter(request.environ, body), status=int(status[:3]), direct_passthrough=True)
    else:
        resp = Response(body, status=int(status[:3]))
    resp.headers.clear()
    for key, value in headers:
        resp.headers.add(key, value)
    return resp


@bp.before_app_request
def registry_first():
    """Answer ``/v2`` before URL routing, so odd paths (``/v2//x``) reach the registry too."""
    path = request.path
    if (path[:3] == "/v2" and (len(path) == 3 or path[3] == "/")) or path.startswith(EXTENSIONS_PREFIX):
        return registry_api()
    return None


@bp.route("/v2", methods=METHODS, provide_automatic_options=False, strict_slashes=False)
@bp.route("/v2/", defaults={"rest": ""}, methods=METHODS, provide_automatic_options=False)
@bp.route("/v2/<path:rest>", methods=METHODS, provide_automatic_options=False)
def registry_api(rest: str = "") -> Response:
    """Every ``/v2`` request, handed to the shared :class:`~crane_fedora.registry.Registry`."""
    state = current_app.extensions["crane_fedora"]
    state.store.ensure_poller()
    return to_response(*state.registry.handle(request.environ))
