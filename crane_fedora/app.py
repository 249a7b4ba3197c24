"""Application factory: config → metadata store → registry → Flask app with blueprints.

Everything an app needs lives in ``app.extensions["crane_fedora"]`` (no module globals), so
tests and multi-app processes get independent instances.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from crane_fedora.config import Config, ConfigError, load_config
from crane_fedora.fastpath import FastPath
from crane_fedora.metadata.store import MetadataStore
from crane_fedora.metrics import Metrics
from crane_fedora.registry import API_HEADER, NOSNIFF, Registry, error_body
from crane_fedora.views import admin as admin_views
from crane_fedora.views import flatpak as flatpak_views
from crane_fedora.views import metrics as metrics_views
from crane_fedora.views import registry as registry_views

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CraneState:
    """Per-application state, reachable from views as ``current_app.extensions["crane_fedora"]``."""

    config: Config
    store: MetadataStore
    registry: Registry
    #: None when ``[metrics] enable = false``.
    metrics: Metrics | None = None


def _serve_content_usable(config: Config) -> bool:
    """Crane's rule: serve mode needs an existing, non-empty content dir; else one error, mode off."""
    if not config.serve_content:
        return False
    try:
        if os.path.isdir(config.content_dir_v2) and os.listdir(config.content_dir_v2):
            return True
    except OSError:
        pass
    log.error(
        "[serve_content] content_dir_v2 %s is missing or empty; serve_content disabled, redirecting",
        config.content_dir_v2,
    )
    return False


def _json_error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    resp = Response(error_body(code, message), status=status, mimetype="application/json", headers=headers)
    resp.headers[NOSNIFF[0]] = NOSNIFF[1]
    if request.path.startswith("/v2"):
        resp.headers[API_HEADER[0]] = API_HEADER[1]
    return resp


def _install_error_handlers(app: Flask) -> None:
    """JSON for every error Flask itself could produce: never an HTML page, never a traceback."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 405:
            allow = ", ".join(getattr(exc, "valid_methods", None) or ["GET", "HEAD"])
            return _json_error(405, "UNSUPPORTED", "method not allowed", {"Allow": allow})
        if 300 <= status < 400:  # routing redirects (e.g. strict slashes)
            location = getattr(exc, "new_url", None) or "/"
            return Response(b"", status=status, headers={"Location": location})
        code = {404: "NOT_FOUND", 400: "BAD_REQUEST"}.get(status, "UNKNOWN")
        return _json_error(status, code, exc.name or "error")

    @app.errorhandler(Exception)
    def any_error(exc: Exception) -> Response:
        log.exception("error answering %r %r", request.method, request.path[:300])
        return _json_error(500, "UNKNOWN", "internal server error")


def create_app(config: Config | str | os.PathLike | None = None) -> Flask:
    """Build an app. ``config``: a :class:`Config`, a config file path, or None (env / /etc).

    Raises :class:`ConfigError` for a bad configuration. Loads the metadata once, blocking; the
    poll thread and the optional message listener start with the first request of each process
    (never at import time).
    """
    if not isinstance(config, Config):
        config = load_config(config)
    if config.debug:
        logging.getLogger("crane_fedora").setLevel(logging.DEBUG)
    store = MetadataStore(config)
    store.refresh()
    if config.notify_amqp_url:
        # Imported only when configured: the module itself needs no pika, but keeps it out of sight.
        from crane_fedora.metadata.listener import Listener

        store.listener = Listener(config, store)
    registry = Registry(config, store, _serve_content_usable(config))
    metrics = Metrics(store) if config.metrics else None
    if metrics is not None:
        registry.on_redirect = metrics.count_redirect

    app = Flask(__name__)
    app.config["DEBUG"] = config.debug
    app.url_map.merge_slashes = False
    app.extensions["crane_fedora"] = CraneState(config, store, registry, metrics)
    app.register_blueprint(registry_views.bp)
    app.register_blueprint(admin_views.bp)
    app.register_blueprint(flatpak_views.bp)
    if config.ui_enable:
        from crane_fedora.views import ui as ui_views

        ui_views.init_app(app)
    if metrics is not None:
        app.register_blueprint(metrics_views.bp)
    _install_error_handlers(app)

    @app.after_request
    def _no_html(resp: Response) -> Response:
        # Werkzeug's routing redirects (strict slashes) carry an HTML body: drop it.
        # The browsable pages (crane_fedora.views.ui, never under /v2) are the only HTML answers,
        # and each carries a Content-Security-Policy.
        if resp.mimetype == "text/html" and "Content-Security-Policy" not in resp.headers:
            resp.set_data(b"")
            if resp.status_code < 300 or resp.status_code >= 400:
                resp.mimetype = "application/json"
            else:
                del resp.headers["Content-Type"]
        if request.path.startswith("/v2"):
            resp.headers.setdefault(*API_HEADER)
        return resp

    app.wsgi_app = FastPath(  # type: ignore[method-assign]
        app.wsgi_app, registry, fast=config.fast_path, metrics=metrics
    )
    log.info("crane_fedora ready: %d repositories from %s", len(store.index.repos), store.data_dir)
    return app


__all__ = ["ConfigError", "CraneState", "create_app"]
