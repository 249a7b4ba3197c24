"""``/v2`` as a Flask blueprint, for deployments that turn the WSGI fast path off."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from crane_fedora.fastpath import file_iter
from crane_fedora.registry import FileBody, is_registry_path

bp = Blueprint("registry", __name__)


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
def registry_first() -> Response | None:
    """Answer ``/v2`` and ``/extensions/v2`` before URL routing, so odd paths (``/v2//x``) reach it.

    The only way ``/v2`` reaches the registry through Flask: no route is registered for it,
    since this hook answers first.
    """
    path = request.path
    if is_registry_path(path):
        state = current_app.extensions["crane_fedora"]
        return to_response(*state.registry.handle(request.environ))
    return None
