"""Publish notifications: "export complete" messages on the Fedora message bus via a durable outbox.

The Pulp export task calls :func:`notify_export_complete` as its last step. The message is first
written to the outbox (a spool directory), then one delivery attempt is made with short timeouts.
If the broker is unreachable the export still succeeds; ``fedora-mirror notifications --flush``
(or ``--watch``) delivers the message later. See docs/messages.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .config import NotifyConfig, load_config
from .message import SCHEMA, TOPIC, Message, build_export_complete
from .outbox import Outbox, Pending, SendError
from .senders import Amqp091Sender, Amqp10Sender, make_sender

__all__ = [
    "SCHEMA",
    "TOPIC",
    "Amqp091Sender",
    "Amqp10Sender",
    "Message",
    "NotifyConfig",
    "Outbox",
    "Pending",
    "SendError",
    "build_export_complete",
    "flush",
    "load_config",
    "make_sender",
    "notify_export_complete",
]

log = logging.getLogger(__name__)


def _as_config(config: NotifyConfig | Mapping[str, Any] | None) -> NotifyConfig:
    if isinstance(config, NotifyConfig):
        return config
    if config is None:
        return load_config()
    return load_config(**{str(k).lower(): v for k, v in config.items()})


def flush(config: NotifyConfig, *, lock_wait: float = 30.0) -> tuple[int, int]:
    """Try to deliver everything pending in ``config.spool_dir`` now; return ``(sent, failed)``.

    With no broker URL configured nothing is sent: ``(0, number pending)``.
    """
    outbox = Outbox(config.spool_dir)
    if not config.url:
        return 0, len(outbox.pending())
    sender = make_sender(config)
    try:
        return outbox.flush(sender, lock_wait=lock_wait)
    finally:
        sender.close()


def notify_export_complete(
    summary: Mapping[str, Any] | Any,
    *,
    export_id: str,
    source: str,
    config: NotifyConfig | Mapping[str, Any] | None = None,
    repository: str = "",
    started_at: str | None = None,
) -> None:
    """Queue the ``export.complete`` message for one export, then try once to deliver it.

    Why this never raises for bus problems: the tree is already published when this runs; a
    broker outage must not fail (or hold up) the export. The message waits in the outbox instead.
    Failing to *queue* (disk full, unwritable spool) does raise: that would lose the message, and
    a failed task is visible and can be retried (the same ``export_id`` is queued only once).
    """
    cfg = _as_config(config)
    message = build_export_complete(
        summary,
        export_id=export_id,
        source=source,
        topic_prefix=cfg.topic_prefix,
        repository=repository,
        started_at=started_at,
    )
    pending = Outbox(cfg.spool_dir).enqueue(message)
    log.info("notification %s for export %s queued in %s", pending.message.id, export_id, pending.path)
    if not cfg.url:
        log.warning("no broker URL configured; notification %s stays in %s", message.id, cfg.spool_dir)
        return
    try:
        sent, failed = flush(cfg, lock_wait=min(cfg.connect_timeout, 5.0))
    except TimeoutError as exc:  # another flush holds the outbox; it (or the next one) sends ours
        log.warning("notification %s queued; %s", message.id, exc)
        return
    except Exception:  # never let the bus fail an export; the message is safe in the outbox
        log.exception("notification %s queued but delivery attempt crashed", message.id)
        return
    if failed:
        log.warning(
            "notification for export %s queued, %d message(s) not delivered yet; "
            "run 'fedora-mirror notifications --flush'",
            export_id,
            failed,
        )
    else:
        log.info("notifications delivered: %d", sent)
