"""A hand-made WSGI environ, for calling crane_fedora's WSGI callable in process.

Hand-made rather than Werkzeug's ``EnvironBuilder`` so that ``PATH_INFO`` can hold exactly what a
server would pass (undecoded, odd bytes), which the security fuzz test depends on; the UI
benchmark uses the same request so that its numbers are for what a server sends.
"""

from __future__ import annotations

import io
from typing import IO


def wsgi_environ(
    method: str,
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    remote: str = "192.0.2.7",
    errors: IO[str] | None = None,
) -> dict:
    """The environ an HTTPS server for registry.example.org passes for one request from ``remote``."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "registry.example.org",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote,
        "HTTP_HOST": "registry.example.org",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO() if errors is None else errors,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for key, value in (headers or {}).items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    return environ
