"""Health check, Crane's ``/v1/_ping`` and its JSON repository view; the rest of v1 is gone."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from crane_fedora.protected import visible_names

bp = Blueprint("admin", __name__)


def _json(doc: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(doc), status=status, mimetype="application/json", headers=headers)


@bp.route("/healthz", methods=["GET", "HEAD"])
def healthz() -> Response:
    """200 with counts once the metadata directory has been loaded, 503 before (load balancers).

    Also 503 while a directory under data_dir cannot be read: the repositories last read from it
    are still served, but they can no longer be updated, which a load balancer should know.
    """
    state = current_app.extensions["crane_fedora"]
    store = state.store
    index = store.index
    unreadable = store.unreadable
    status = "loading" if not store.loaded else "unreadable" if unreadable else "ok"
    doc = {
        "status": status,
        "repositories": len(index.repos),
        "native": index.native,
        "pulp2": index.pulp2,
        "files": index.files,
        "errors": index.errors,
        "loaded_at": index.loaded_at,
    }
    if unreadable:
        doc["unreadable"] = [{"path": rel, "error": why} for rel, why in unreadable]
    return _json(doc, 200 if status == "ok" else 503)


@bp.route("/v1/_ping", methods=["GET", "HEAD"])
def v1_ping() -> Response:
    """Crane answered this; old docker clients probe it. The v1 API itself is not served."""
    return _json(
        True,
        headers={
            "X-Docker-Registry-Version": "0.6.6",
            "X-Docker-Registry-Config": "common",
            "X-Docker-Registry-Standalone": "True",
        },
    )


@bp.before_app_request
def v1_gone() -> Response | None:
    """The docker-registry 0.6 (v1) protocol is dead: every /v1 path but _ping says so in JSON."""
    path = request.path
    if (path == "/v1" or path.startswith("/v1/")) and path != "/v1/_ping":
        return _json(
            {
                "errors": [
                    {"code": "UNSUPPORTED", "message": "the v1 registry API is not served", "detail": {}}
                ]
            },
            404,
        )
    return None


@bp.route("/crane/repositories/v2", methods=["GET", "HEAD"])
def repositories_v2() -> Response:
    """Crane's admin view ``{name: {"protected": bool}}`` (always JSON).

    Lists only what this client may see (like ``/v2/_catalog``): Crane listed protected names to
    anyone who reached ``/crane/``; keep restricting the path at the proxy all the same.
    """
    state = current_app.extensions["crane_fedora"]
    index = state.store.index
    names = visible_names(index, request.environ, state.config)
    return _json({name: {"protected": index.repos[name].protected} for name in names})
