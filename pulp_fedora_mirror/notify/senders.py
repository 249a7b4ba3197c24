"""Senders: put one outbox message on the bus and return only once the broker confirmed it.

Two protocols, chosen by the URL scheme (:func:`make_sender`):

* ``amqp://``, ``amqps://`` — AMQP 0-9-1 with pika to ``amq.topic`` (or ``exchange``), with exactly
  fedora-messaging's properties and headers. **Recommended**: it is what Fedora's broker speaks
  and what fedora-messaging consumers understand (``shared/reference/messaging.md`` §1, §4).
  Confirmation: publisher confirms (``confirm_delivery``).
* ``amqp1+amqp://``, ``amqp1+amqps://`` — AMQP 1.0 with python-qpid-proton to ``/topic/<key>``
  (RabbitMQ 3.x ``rabbitmq_amqp1_0`` addresses). The headers travel as application properties,
  which RabbitMQ 3.10 hands to 0-9-1 consumers only as one opaque ``x-amqp-1.0-app-properties``
  header; fedora-messaging then logs "publisher is misbehaving". Use it for AMQP 1.0 brokers and
  consumers. Confirmation: the ``accepted`` disposition of a settled delivery.

Both fail fast (``connect_timeout``) and raise :class:`~.outbox.SendError`; the message then stays
in the outbox.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

from pulp_fedora_mirror.amqp import pika_parameters

from .config import NotifyConfig
from .message import Message
from .outbox import SendError

log = logging.getLogger(__name__)

AMQP091_SCHEMES = ("amqp", "amqps")
AMQP10_SCHEMES = ("amqp1+amqp", "amqp1+amqps")


def _body_bytes(message: Message) -> bytes:
    return json.dumps(message.body, sort_keys=True).encode(message.content_encoding)


class Amqp091Sender:
    """AMQP 0-9-1 (pika) publisher with publisher confirms; one connection reused per flush."""

    def __init__(self, config: NotifyConfig) -> None:
        import pika  # optional dependency: the [amqp] extra

        self._pika = pika
        self.config = config
        assert config.url is not None
        t = config.connect_timeout
        params = pika_parameters(
            config.url,
            timeout=t,
            ca_cert=config.ca_cert,
            certfile=config.certfile,
            keyfile=config.keyfile,
            blocked_connection_timeout=t,
        )
        self._params = params
        self._conn: Any = None
        self._channel: Any = None

    def _connect(self) -> None:
        exc_mod = self._pika.exceptions
        try:
            self._conn = self._pika.BlockingConnection(self._params)
            self._channel = self._conn.channel()
            self._channel.confirm_delivery()
        except (exc_mod.AMQPError, OSError) as exc:
            self.close()
            raise SendError(f"cannot connect to {self._where()}: {_describe(exc)}", unreachable=True) from exc

    def _where(self) -> str:
        return f"{self._params.host}:{self._params.port}"

    def send(self, message: Message) -> None:
        """Publish and wait for the broker's confirm (raises SendError otherwise)."""
        exc_mod = self._pika.exceptions
        if self._channel is None or not self._channel.is_open:
            self._connect()
        props = self._pika.BasicProperties(
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=2,
            headers=message.headers,
            message_id=message.id,
        )
        try:
            self._channel.basic_publish(
                exchange=self.config.exchange,
                routing_key=message.topic,
                body=_body_bytes(message),
                properties=props,
            )
        except exc_mod.NackError as exc:
            raise SendError(f"broker refused message {message.id} (nack)") from exc
        except (exc_mod.AMQPError, OSError) as exc:
            self.close()
            raise SendError(
                f"lost connection to {self._where()} while sending: {_describe(exc)}", unreachable=True
            ) from exc

    def close(self) -> None:
        """Close the connection (idempotent, never raises)."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing AMQP connection failed", exc_info=True)


class Amqp10Sender:
    """AMQP 1.0 (python-qpid-proton) publisher; waits for a settled, accepted delivery."""

    def __init__(self, config: NotifyConfig) -> None:
        assert config.url is not None
        self.config = config
        parts = urllib.parse.urlsplit(config.url)
        self._scheme = parts.scheme
        self._tls = parts.scheme == "amqp1+amqps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (5671 if self._tls else 5672)
        self._user = urllib.parse.unquote(parts.username) if parts.username else None
        self._password = urllib.parse.unquote(parts.password) if parts.password else None
        vhost = urllib.parse.unquote(parts.path[1:]) if parts.path not in ("", "/") else None
        self._vhost = vhost
        self._conn: Any = None
        self._senders: dict[str, Any] = {}

    def _where(self) -> str:
        return f"{self._host}:{self._port}"

    def _address(self, topic: str) -> str:
        if self.config.exchange == "amq.topic":
            return f"/topic/{topic}"
        return f"/exchange/{self.config.exchange}/{topic}"

    def _connect(self) -> None:
        from proton import SSLDomain
        from proton.utils import BlockingConnection

        kwargs: dict[str, Any] = {"timeout": self.config.connect_timeout, "reconnect": False}
        if self._user:
            kwargs.update(
                user=self._user,
                password=self._password or "",
                allowed_mechs="PLAIN",
                allow_insecure_mechs=True,
            )
        elif self.config.certfile:
            kwargs["allowed_mechs"] = "EXTERNAL"
        else:
            kwargs["allowed_mechs"] = "ANONYMOUS"
        if self._vhost:
            kwargs["virtual_host"] = f"vhost:{self._vhost}"
        if self._tls:
            domain = SSLDomain(SSLDomain.MODE_CLIENT)
            if self.config.ca_cert:
                domain.set_trusted_ca_db(self.config.ca_cert)
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
            if self.config.certfile:
                domain.set_credentials(
                    self.config.certfile, self.config.keyfile or self.config.certfile, None
                )
            kwargs["ssl_domain"] = domain
        scheme = "amqps" if self._tls else "amqp"
        try:
            self._conn = BlockingConnection(f"{scheme}://{self._host}:{self._port}", **kwargs)
        except Exception as exc:  # proton raises ConnectionException, Timeout, or plain errors
            self.close()
            raise SendError(f"cannot connect to {self._where()}: {_describe(exc)}", unreachable=True) from exc

    def send(self, message: Message) -> None:
        """Send on ``/topic/<routing key>`` and require the ``accepted`` outcome."""
        from proton import Delivery
        from proton import Message as ProtonMessage

        if self._conn is None:
            self._connect()
        address = self._address(message.topic)
        pm = ProtonMessage(
            id=message.id,
            durable=True,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            body=_body_bytes(message),
            inferred=True,  # one data section: raw JSON bytes on the 0-9-1 side
            properties=dict(message.headers),
        )
        try:
            sender = self._senders.get(address)
            if sender is None:
                sender = self._senders[address] = self._conn.create_sender(address)
            delivery = sender.send(pm, timeout=self.config.connect_timeout)
        except Exception as exc:
            self.close()
            raise SendError(
                f"sending {message.id} to {self._where()} failed: {_describe(exc)}", unreachable=True
            ) from exc
        if delivery.remote_state != Delivery.ACCEPTED:
            raise SendError(f"broker did not accept message {message.id} (state {delivery.remote_state})")

    def close(self) -> None:
        """Close the connection (idempotent, never raises)."""
        conn, self._conn, self._senders = self._conn, None, {}
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing AMQP 1.0 connection failed", exc_info=True)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}".splitlines()[0]


def make_sender(config: NotifyConfig) -> Amqp091Sender | Amqp10Sender:
    """The sender for ``config.url``'s scheme (ValueError for no URL or an unknown scheme)."""
    if not config.url:
        raise ValueError("no broker URL configured (FEDORA_MIRROR_AMQP_URL or 'url' in the config)")
    scheme = urllib.parse.urlsplit(config.url).scheme
    if scheme in AMQP091_SCHEMES:
        return Amqp091Sender(config)
    if scheme in AMQP10_SCHEMES:
        return Amqp10Sender(config)
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r}: use amqp:// or amqps:// (AMQP 0-9-1, recommended) "
        "or amqp1+amqp:// / amqp1+amqps:// (AMQP 1.0)"
    )
