"""Instant reload: listen for the exporter's ``export.complete`` messages and rescan at once.

Why a listener at all: with ``data_dir_polling_interval = 60`` a freshly exported tag is invisible
for up to a minute; the exporter already announces every export on the bus (docs/messages.md).

Why messages are only *hints*: the files are the truth. A message never changes the index; it
only makes the store run its ordinary incremental :meth:`MetadataStore.reload` now instead of at
the next poll. A forged, stale or duplicated message can at worst cause one extra (cheap) scan.
Messages published while we are disconnected are lost, so every (re)connect also scans once;
polling stays the fallback for everything else (e.g. replicas whose copy arrives later by rsync).

One daemon thread per process, started by :meth:`MetadataStore.ensure_poller` on the process's
first request (never at import time; a forked worker starts its own, with its own connection and
its own queue, so every worker process sees every message). ``pika`` is imported in that thread
only, so crane_fedora imports and runs without it when notifications are off.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
from importlib.util import find_spec
from typing import Any

from crane_fedora.config import Config, redact_url
from crane_fedora.metadata.store import MetadataStore
from pulp_fedora_mirror.amqp import pika_parameters
from pulp_fedora_mirror.layout import is_valid_name

log = logging.getLogger(__name__)

#: Seconds between checks of the stop flag while waiting for messages (also the stop latency).
POLL_SECONDS = 0.5
#: TCP connect / AMQP handshake timeout: a dead broker must not hold the thread for long.
CONNECT_TIMEOUT = 10.0
#: Bigger bodies are not even parsed: the real message is a few kB.
MAX_BODY = 1 << 20


def parse_hint(body: bytes) -> str:
    """The repository name an ``export.complete`` body announces; ``ValueError`` if malformed.

    Only the name is taken from the message, and only to log it: the reload itself reads files.
    """
    if len(body) > MAX_BODY:
        raise ValueError(f"body too large ({len(body)} bytes)")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
        raise ValueError(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object but {type(doc).__name__}")
    name = doc.get("name")
    if not isinstance(name, str) or not is_valid_name(name):
        raise ValueError(f"no valid repository 'name': {str(name)[:100]!r}")
    return name


class Listener:
    """Consume ``export.complete`` messages in a per-process daemon thread and reload the store."""

    def __init__(self, config: Config, store: MetadataStore) -> None:
        self.config = config
        self.store = store
        self.where = redact_url(config.notify_amqp_url)
        #: pid of the process whose thread is running (0: none); see :meth:`start`.
        self._pid = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: pika missing is a deployment error: say so once at startup, then run as if off.
        try:
            self.available = find_spec("pika") is not None
        except (ImportError, ValueError):  # blocked or half-imported: as good as missing
            self.available = False
        if not self.available:
            log.error(
                "[notifications] amqp_url is set but pika is not installed (pip install pika); "
                "instant reload is off, polling continues"
            )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start this process's thread unless it runs already (called under the store's lock)."""
        if not self.available or self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._stop = threading.Event()  # fresh per process: never one inherited mid-use over fork
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="crane-metadata-listener", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Ask the thread to close its connection and end (within :data:`POLL_SECONDS`)."""
        self._stop.set()
        self._pid = 0
        if wait and self._thread is not None:
            self._thread.join(wait)

    # -- connection ----------------------------------------------------------------------------
    def _parameters(self) -> Any:
        cfg = self.config
        return pika_parameters(
            cfg.notify_amqp_url,
            timeout=CONNECT_TIMEOUT,  # our own loop retries, with backoff and stop checks
            ca_cert=cfg.notify_ca_cert,
            certfile=cfg.notify_certfile,
            keyfile=cfg.notify_keyfile,
            connection_name=f"crane_fedora {socket.gethostname()} pid {os.getpid()}",
        )

    def _queue_name(self) -> str:
        """Configured name with ``{pid}``/``{host}`` filled in, or "" (the broker picks one)."""
        if not self.config.notify_queue:
            return ""
        return self.config.notify_queue.format(pid=os.getpid(), host=socket.gethostname())

    @staticmethod
    def _hint_collector(hints: list[str]) -> Any:
        """pika callback: validate a message and append its name to ``hints`` (or log and drop it).

        The reload runs after the batch, so a burst of messages costs one scan. ``hints`` is local
        to one connection's thread: a thread that is still stopping shares nothing with its successor.
        """

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            try:
                name = parse_hint(body)
            except ValueError as exc:
                log.warning(
                    "notification ignored (routing key %r, message id %r): %s",
                    str(method.routing_key)[:200],
                    str(getattr(properties, "message_id", None))[:100],
                    exc,
                )
                return
            hints.append(name)

        return on_message

    def _consume(self, pika: Any, stop: threading.Event, connected: list[bool]) -> None:
        """One connection's life: connect, declare, bind, consume until stop or an error.

        ``connected[0]`` becomes True once consuming: the caller tells "lost" from "cannot connect".
        """
        cfg = self.config
        hints: list[str] = []
        conn = pika.BlockingConnection(self._parameters())
        try:
            channel = conn.channel()
            declared = channel.queue_declare(
                queue=self._queue_name(), exclusive=True, auto_delete=True, durable=False
            )
            queue = declared.method.queue
            channel.queue_bind(queue=queue, exchange=cfg.notify_exchange, routing_key=cfg.notify_topic)
            channel.basic_consume(queue=queue, on_message_callback=self._hint_collector(hints), auto_ack=True)
            log.info(
                "listening for export messages on %s: exchange %r, binding %r, queue %r",
                self.where,
                cfg.notify_exchange,
                cfg.notify_topic,
                queue,
            )
            connected[0] = True
            # Whatever was announced while we were not listening is lost: catch up now.
            self.store.reload("listener connected")
            while not stop.is_set():
                conn.process_data_events(time_limit=POLL_SECONDS)  # returns early once a message is in
                if hints:
                    names = hints[:]
                    hints.clear()
                    shown = ", ".join(sorted(set(names))[:5])
                    log.info("export message for %s: rescanning %s", shown, self.store.data_dir)
                    if not self.store.reload(f"export message for {shown}"):
                        log.info("export message for %s: no metadata change seen (yet)", shown)
        finally:
            if conn.is_open:
                try:
                    conn.close()
                except Exception:  # closing a broken connection: nothing left to do
                    log.debug("closing the AMQP connection failed", exc_info=True)

    def _run(self, stop: threading.Event) -> None:
        """Connect, consume, and on any failure reconnect with capped, jittered backoff.

        Logs one line per state change (connected / lost / still failing is silent), so a broker
        outage of hours does not flood the log. Never raises: the app serves on from the files.
        """
        try:
            import pika  # optional dependency ([amqp] extra), only ever imported here
        except ImportError:  # find_spec said yes, the import says no: broken install
            log.exception("[notifications] cannot import pika; instant reload is off, polling continues")
            return
        pika_log = logging.getLogger("pika")
        if pika_log.level == logging.NOTSET:
            # pika logs several INFO/ERROR lines per connect attempt; ours say it once per state
            # change. An explicitly configured "pika" logger level is left alone.
            pika_log.setLevel(logging.CRITICAL)
        delay = 1.0
        failing = False  # a "cannot listen" / "lost" line was logged; stay quiet until connected
        while not stop.is_set():
            connected = [False]
            try:
                self._consume(pika, stop, connected)
            except Exception as exc:  # broker down, refused, auth, TLS, channel errors, bugs
                if connected[0]:
                    log.warning("lost the connection to %s: %s; reconnecting", self.where, _describe(exc))
                    delay = 1.0
                elif not failing:
                    log.warning(
                        "cannot listen on %s: %s; retrying with backoff up to %d s (polling continues)",
                        self.where,
                        _describe(exc),
                        self.config.notify_reconnect_max_delay,
                    )
                else:
                    log.debug("still cannot listen on %s: %s", self.where, _describe(exc))
                failing = True
                limit = self.config.notify_reconnect_max_delay
                stop.wait(min(delay, limit) * random.uniform(0.5, 1.0))  # jitter: workers spread out
                delay = min(delay * 2, limit)
        log.info("listener for %s stopped", self.where)


def _describe(exc: BaseException) -> str:
    """One line for a pika/socket error: the innermost cause (pika nests them, with empty strs)."""
    for _ in range(5):
        inner = getattr(exc, "exception", None)  # pika's connect-phase wrappers
        if not isinstance(inner, BaseException) and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]  # AMQPConnectionError(<wrapper>,)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]


__all__ = ["Listener", "parse_hint"]
