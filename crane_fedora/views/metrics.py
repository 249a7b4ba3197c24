"""``GET /metrics``: Prometheus text format (registered only with ``[metrics] enable = true``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("metrics", __name__)


@bp.route("/metrics", methods=["GET", "HEAD"])
def metrics() -> Response:
    """Every worker's counters (multi-process mode) and this worker's view of the snapshot."""
    body, content_type = current_app.extensions["crane_fedora"].metrics.exposition()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
