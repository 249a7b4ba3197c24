"""A tiny WSGI app for checking the gunicorn wrapper itself (TLS, env, workers).

``/v2/`` answers ``{}`` like a registry ping; ``/env/<NAME>`` returns an environment variable of
the worker; ``/pid`` the worker pid. Not a stand-in for crane_fedora.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """WSGI entry point: ``tests.harness.probe_app:application``."""
    path = environ.get("PATH_INFO", "")
    if path == "/v2/":
        body: object = {}
    elif path.startswith("/env/"):
        body = {"value": os.environ.get(path[5:])}
    elif path == "/pid":
        body = {"pid": os.getpid()}
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error":"not found"}']
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
