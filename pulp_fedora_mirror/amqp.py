"""pika connection parameters, shared by the exporter's sender and crane_fedora's listener.

Why here and not in either of them: both talk AMQP 0-9-1 to the same broker with the same URL, TLS
and SASL EXTERNAL rules, and crane_fedora must not import the Pulp side (``notify`` pulls in the
outbox), so the one copy lives in a plain module with no Django and no import of pika at load time
(pika is the optional ``[amqp]`` extra; it is imported when parameters are built).
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any


def ssl_context(ca_cert: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """A verifying client context: ``ca_cert`` (else the system store) and an optional client cert."""
    ctx = ssl.create_default_context(cafile=ca_cert or None)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile or None)
    return ctx


def pika_parameters(
    url: str,
    *,
    timeout: float,
    ca_cert: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    connection_name: str | None = None,
    blocked_connection_timeout: float | None = None,
) -> Any:
    """``pika.URLParameters`` for ``url`` that fail fast and make one attempt (callers retry).

    ``amqps://`` gets a verifying TLS context; with a client certificate and no password in the
    URL, SASL EXTERNAL (Fedora's broker: the user is the certificate's CN).
    """
    import pika  # optional dependency: the [amqp] extra

    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    if blocked_connection_timeout is not None:
        params.blocked_connection_timeout = blocked_connection_timeout
    params.connection_attempts = 1
    params.retry_delay = 0
    if connection_name:
        params.client_properties = {"connection_name": connection_name}  # shown by rabbitmqctl / the UI
    if url.startswith("amqps://"):
        params.ssl_options = pika.SSLOptions(ssl_context(ca_cert, certfile, keyfile), params.host)
        if certfile and not urllib.parse.urlsplit(url).password:
            params.credentials = pika.credentials.ExternalCredentials()
    return params
