"""WSGI middleware that answers ``/v2`` before Flask sees the request.

Why: Flask's request/response objects cost more than the whole registry logic. The middleware
calls the same :class:`~crane_fedora.registry.Registry` as the blueprint, so behaviour is
identical; ``[registry] fast_path = off`` routes everything through Flask instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from crane_fedora.registry import EXTENSIONS_PREFIX, STATUS, FileBody, Registry, error

log = logging.getLogger(__name__)


def file_iter(environ: dict, body: FileBody) -> Iterable[bytes]:
    """Stream an open file with the server's ``wsgi.file_wrapper`` when it has one."""
    fh = body.fh
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(fh, 65536)

    def chunks() -> Iterable[bytes]:
        with fh:
            while data := fh.read(65536):
                yield data

    return chunks()


class FastPath:
    """``app.wsgi_app`` wrapper: ``/v2``, ``/v2/...`` and ``/extensions/v2/...`` go to the registry."""

    def __init__(self, app: Callable, registry: Registry) -> None:
        self.app = app
        self.registry = registry
        self.store = registry.store

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (path[:3] != "/v2" or (len(path) > 3 and path[3] != "/")) and not path.startswith(
            EXTENSIONS_PREFIX
        ):
            return self.app(environ, start_response)
        self.store.ensure_poller()
        try:
            status, headers, body = self.registry.handle(environ)
        except Exception:  # never a traceback page; the error is logged with its request
            log.exception("error answering %r %r", environ.get("REQUEST_METHOD"), path[:300])
            status, headers, body = error(500, "UNKNOWN", "internal server error")
        start_response(status, headers)
        if isinstance(body, FileBody):
            return file_iter(environ, body)
        return [body]


__all__ = ["STATUS", "FastPath"]
