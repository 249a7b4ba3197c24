"""The plugin's outbox in Pulp's database (:class:`MirrorNotification`), shared by all workers.

Same contract as the stand-alone file spool (:class:`pulp_fedora_mirror.notify.outbox.Outbox`),
which the CLI keeps using: a notice is stored before any attempt to send it, deleted only after
the broker confirmed it (at-least-once, same ``message_id`` on a re-send), sent oldest first,
and an unreachable broker stops the flush (the rest would each wait for the connect timeout).
What the database adds: any worker on any host sends what any other recorded, row locks instead
of ``flock``, and "only after the export task has ended" as a query condition.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from pulpcore.plugin.constants import TASK_FINAL_STATES
from pulpcore.plugin.models import Task

from pulp_fedora_mirror.app.models import MirrorNotification
from pulp_fedora_mirror.notify import Message, NotifyConfig, Outbox, SendError, make_sender

log = logging.getLogger(__name__)


def enqueue(message: Message, task: Any = None) -> MirrorNotification:
    """Store ``message`` (idempotent per ``dedup_key`` and topic); call inside the export's
    transaction so the notice and the export record exist together or not at all."""
    key = message.dedup_key or message.id
    existing = MirrorNotification.objects.filter(topic=message.topic, dedup_key=key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():  # a savepoint: a concurrent duplicate must not break the caller
            return MirrorNotification.objects.create(
                topic=message.topic, dedup_key=key, message=message.to_dict(), task=task
            )
    except IntegrityError:
        return MirrorNotification.objects.get(topic=message.topic, dedup_key=key)


def sendable() -> QuerySet[MirrorNotification]:
    """Notices whose export task has ended (so its exclusive lock is released), oldest first."""
    ended = Task.objects.filter(state__in=TASK_FINAL_STATES).values("pk")
    return MirrorNotification.objects.filter(Q(task__isnull=True) | Q(task_id__in=ended)).order_by(
        "pulp_created"
    )


def pending() -> QuerySet[MirrorNotification]:
    """Everything not yet delivered (including notices of export tasks still finishing)."""
    return MirrorNotification.objects.order_by("pulp_created")


def flush(config: NotifyConfig) -> tuple[int, int]:
    """Send every sendable notice; return ``(sent, failed)``.

    Each notice is sent inside its own transaction holding its row lock (``SKIP LOCKED``: a notice
    another worker is sending is left to it), and deleted in that transaction after the broker's
    confirm. Without a broker URL nothing is sent: ``(0, number pending)``.
    """
    if not config.url:
        return 0, pending().count()
    sender = make_sender(config)
    sent = failed = 0
    tried: list[Any] = []
    try:
        while True:
            with transaction.atomic():
                row = (
                    sendable().exclude(pk__in=tried).select_for_update(skip_locked=True, of=("self",)).first()
                )
                if row is None:
                    break
                tried.append(row.pk)
                message = Message.from_dict(row.message)
                try:
                    sender.send(message)
                except SendError as exc:
                    failed += 1
                    row.attempts += 1
                    row.last_error = str(exc)
                    row.last_attempt_at = timezone.now()
                    row.save(update_fields=["attempts", "last_error", "last_attempt_at", "pulp_last_updated"])
                    log.warning("outbox: message %s not sent: %s", message.id, exc)
                    if exc.unreachable:
                        failed += sendable().exclude(pk__in=tried).count()
                        break
                    continue
                row.delete()
                sent += 1
    finally:
        sender.close()
    return sent, failed


def adopt_spool(spool_dir: str | Path) -> int:
    """Move notices pending in this host's file spool (left by a release whose outbox was a spool
    directory) into the database; return how many. Each file goes only once its row exists."""
    try:
        moved = Outbox(spool_dir).move_to(enqueue)
    except (TimeoutError, OSError) as exc:
        log.warning("outbox: cannot move notices from %s into the database: %s", spool_dir, exc)
        return 0
    if moved:
        log.info("outbox: moved %d notice(s) from %s into the database", moved, spool_dir)
    return moved
