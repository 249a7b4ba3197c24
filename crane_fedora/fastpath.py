"""WSGI middleware that answers ``/v2`` before Flask sees the request.

Why: Flask's request/response objects cost more than the whole registry logic. The middleware
calls the same :class:`~crane_fedora.registry.Registry` as the blueprint, so behaviour is
identical; ``[registry] fast_path = off`` routes everything through Flask instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from crane_fedora.metrics import Metrics
from crane_fedora.registry import STATUS, FileBody, Registry, error, is_registry_path
from crane_fedora.views import flatpak

log = logging.getLogger(__name__)


def file_iter(environ: dict, body: FileBody) -> Iterable[bytes]:
    """Stream an open file with the server's ``wsgi.file_wrapper`` when it has one, else
    ``body.size`` bytes from the file's position. Only a whole file goes to the wrapper: PEP 3333
    lets it send to the end of the file, and only some servers (gunicorn) stop at Content-Length."""
    fh = body.fh
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None and body.whole:
        return wrapper(fh, 65536)

    def chunks() -> Iterable[bytes]:
        left = body.size
        with fh:
            while left > 0 and (data := fh.read(min(65536, left))):
                left -= len(data)
                yield data

    return chunks()


def _counting(start_response: Callable, metrics: Metrics, path: str) -> Callable:
    """``start_response`` that counts the request's status (requests Flask answers)."""

    def counted(status: str, headers: list, exc_info: object = None) -> Callable:
        metrics.count(path, status)
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

    return counted


class FastPath:
    """``app.wsgi_app`` wrapper: ``/v2``, ``/v2/...`` and ``/extensions/v2/...`` go to the registry,
    the Flatpak index to its handler, the rest to Flask.

    Installed always, as the one place every request passes first: it starts the process's
    metadata poller (and listener). With ``fast=False`` (``[registry] fast_path = off``) it
    hands ``/v2`` to Flask too.
    """

    def __init__(
        self, app: Callable, registry: Registry, fast: bool = True, metrics: Metrics | None = None
    ) -> None:
        self.app = app
        self.registry = registry
        self.store = registry.store
        self.fast = fast
        self.metrics = metrics

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.store.ensure_poller()
        path = environ.get("PATH_INFO", "")
        metrics = self.metrics
        if not self.fast or not is_registry_path(path):
            sr = start_response if metrics is None else _counting(start_response, metrics, path)
            if self.fast and path in flatpak.PATHS:  # the Flatpak index: as hot as a manifest GET
                return self._flatpak(environ, sr)
            return self.app(environ, sr)
        try:
            status, headers, body = self.registry.handle(environ)
        except Exception:  # never a traceback page; the error is logged with its request
            log.exception("error answering %r %r", environ.get("REQUEST_METHOD"), path[:300])
            status, headers, body = error(500, "UNKNOWN", "internal server error")
        if metrics is not None:
            metrics.count(path, status)
        start_response(status, headers)
        if isinstance(body, FileBody):
            return file_iter(environ, body)
        return [body]

    def _flatpak(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            status, headers, body = flatpak.handle(environ, self.registry.config, self.store)
        except Exception:
            log.exception("error answering %r %r", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            status, headers, body = error(500, "UNKNOWN", "internal server error")
        start_response(status, headers)
        return [body]  # type: ignore[list-item]


__all__ = ["STATUS", "FastPath"]
