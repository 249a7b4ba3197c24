"""Publish notifications from Pulp: queue with the export record, send after the export's lock.

The message and the senders live in :mod:`pulp_fedora_mirror.notify` (no Django; the CLI and
Bodhi use them too, with the file spool as their outbox). Inside Pulp the outbox is the
``MirrorNotification`` table (:mod:`pulp_fedora_mirror.app.outbox`), shared by the workers of
every host:

1. the export task stores the notice in the transaction that saves the export record
   (:func:`queue_notification`);
2. it then dispatches :func:`send_notifications` with a *shared* lock on a resource the export
   task holds *exclusively*, so pulpcore starts the send only after the export task has ended
   and released its locks: a slow or dead broker never holds the exporter;
3. the scheduled :func:`flush_notifications` retries whatever is still pending, from any worker.

Settings (Pulp's ``settings.py``)::

    FEDORA_MIRROR_NOTIFY = {
        "url": "amqps://rabbitmq.example.org/%2Fpubsub",
        "topic_prefix": "org.fedoraproject.prod",
        "certfile": "...", "keyfile": "...", "ca_cert": "...",
        "retry_interval": 60,          # seconds between retries of pending messages
        # or keep the broker settings in a file only the worker can read:
        # "config_file": "/etc/fedora-mirror/notify.toml",
    }

Without that setting (and without ``FEDORA_MIRROR_AMQP_URL``/``FEDORA_MIRROR_NOTIFY_CONFIG`` in the
worker's environment or ``/etc/fedora-mirror/notify.toml``) notifications are off: nothing is
queued, so a Pulp that is not meant to announce does not fill a spool forever.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from pulp_fedora_mirror.notify import build_export_complete
from pulp_fedora_mirror.notify.config import SYSTEM_CONFIG, NotifyConfig, load_config

log = logging.getLogger(__name__)

SETTING = "FEDORA_MIRROR_NOTIFY"


def _enabled_elsewhere() -> bool:
    return bool(
        os.environ.get("FEDORA_MIRROR_AMQP_URL")
        or os.environ.get("FEDORA_MIRROR_NOTIFY_CONFIG")
        or SYSTEM_CONFIG.is_file()
    )


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat()


def export_href(export: Any, get_url: Any) -> str:
    """The export's REST href. ``get_url(export)`` cannot reverse the nested route (it needs the
    exporter's pk too), so build it from the exporter's href, as the API shows it."""
    exporter = export.exporter
    cast = getattr(exporter, "cast", None)
    exporter = cast() if callable(cast) else exporter
    return f"{get_url(exporter)}exports/{export.pk}/"


def plugin_notify_config() -> NotifyConfig | None:
    """The notifier's config from Pulp's settings (merged over env and files), or None if off.

    Read at every call, not at import: a ``config_file`` edited by the admin takes effect for
    the next export without restarting workers. A configured file that is missing or unreadable
    turns notifications off with an error in the log rather than failing exports.
    """
    from django.conf import settings

    conf = {str(k).lower(): v for k, v in dict(getattr(settings, SETTING, None) or {}).items()}
    if not conf and not _enabled_elsewhere():
        log.debug("notifications off (no %s setting)", SETTING)
        return None
    path = conf.pop("config_file", None)
    conf.pop("retry_interval", None)
    try:
        return load_config(path, **conf)
    except (OSError, ValueError) as exc:
        log.error("notifications off: cannot read their configuration (%s)", exc)
        return None


def retry_interval() -> int:
    """Seconds between runs of :func:`flush_notifications` (setting ``retry_interval``, default 60)."""
    from django.conf import settings

    conf = dict(getattr(settings, SETTING, None) or {})
    return max(1, int(conf.get("retry_interval", conf.get("RETRY_INTERVAL", 60))))


#: Dotted path of the send task (what pulpcore stores and lists as the task's ``name``).
SEND_TASK = "pulp_fedora_mirror.app.tasks.notify.send_notifications"


def _deliver() -> dict[str, int]:
    from pulp_fedora_mirror.app import outbox

    cfg = plugin_notify_config()
    if cfg is None:
        return {"sent": 0, "failed": 0}
    if cfg.spool_dir:
        outbox.adopt_spool(cfg.spool_dir)  # notices this host queued before the upgrade
    sent, failed = outbox.flush(cfg)
    if sent or failed:
        log.info("notifications: %d delivered, %d still pending", sent, failed)
    return {"sent": sent, "failed": failed}


def send_notifications() -> dict[str, int]:
    """Task dispatched by an export once it has recorded its notice: deliver what is pending.

    It runs only after that export task has ended (see the module docstring), on any worker.
    """
    return _deliver()


def flush_notifications() -> dict[str, int]:
    """Task run by a pulpcore TaskSchedule: deliver what the outbox still holds.

    This is what makes "retried until delivered" true inside Pulp: a message queued while the
    broker was down leaves with the next run, on whichever worker (and host) runs it, whether or
    not another export happens.
    """
    return _deliver()


def queue_notification(export: Any, summary: Any) -> bool:
    """Store the ``export.complete`` notice of a saved MirrorExport in the outbox table.

    Call it inside the transaction that saves the export record. Returns False when
    notifications are off (nothing queued). ``export_id`` is the export's REST href (what Bodhi
    sees in the task's created_resources); ``source`` the exported repository version href.
    """
    from pulpcore.plugin.util import get_url

    from pulp_fedora_mirror.app import outbox

    cfg = plugin_notify_config()
    if cfg is None:
        return False
    data = dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else dict(summary)
    params = export.params if isinstance(export.params, Mapping) else {}
    repository = ""
    try:
        resource = export.exported_resources.first()
        if resource is not None and resource.content_object is not None:
            repository = resource.content_object.repository.name
    except Exception:  # informational only; never fail the export over it
        log.debug("could not resolve the exported repository's name", exc_info=True)
    task = getattr(export, "task", None)
    message = build_export_complete(
        data,
        export_id=export_href(export, get_url),
        source=str(params.get("repository_version", "")),
        topic_prefix=cfg.topic_prefix,
        repository=repository,
        started_at=_iso(getattr(task, "started_at", None)),
    )
    row = outbox.enqueue(message, task=task)
    log.info("notification %s for export %s queued in the database outbox", message.id, message.dedup_key)
    return row is not None


def dispatch_send(notify_resource: str | None) -> None:
    """Dispatch :func:`send_notifications` to run once the calling export task has ended.

    ``notify_resource`` is a resource the export task holds exclusively (the viewset adds it);
    the send task takes it shared, so pulpcore starts it only after the export released it.
    Without one (a task queued by an older API process) the send task still never sends before
    the export task has ended (see ``outbox.sendable``): the scheduled retry then delivers it.
    """
    from pulpcore.plugin.tasking import dispatch

    dispatch(SEND_TASK, shared_resources=[notify_resource] if notify_resource else None)
