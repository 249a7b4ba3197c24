"""Publish notifications from Pulp: the export task's hook and the periodic retry.

The message itself, the outbox and the senders live in :mod:`pulp_fedora_mirror.notify` (no
Django; the CLI and Bodhi use them too). This module only reads Pulp's settings and the export
record. Settings (Pulp's ``settings.py``)::

    FEDORA_MIRROR_NOTIFY = {
        "url": "amqps://rabbitmq.example.org/%2Fpubsub",
        "topic_prefix": "org.fedoraproject.prod",
        "spool_dir": "/var/lib/pulp/fedora-mirror/outbox",
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

from pulp_fedora_mirror.notify import flush, notify_export_complete
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


def flush_notifications() -> dict[str, int]:
    """Task run by a pulpcore TaskSchedule: deliver what the outbox still holds.

    This is what makes "retried until delivered" true inside Pulp: a message queued while the
    broker was down leaves with the next run, whether or not another export happens.
    """
    cfg = plugin_notify_config()
    if cfg is None:
        return {"sent": 0, "failed": 0}
    sent, failed = flush(cfg)
    if sent or failed:
        log.info("notifications: %d delivered, %d still pending", sent, failed)
    return {"sent": sent, "failed": failed}


def notify_from_pulp(export: Any, summary: Any) -> None:
    """Queue and try to send the ``export.complete`` message for a saved MirrorExport.

    ``export_id`` is the export's REST href (what Bodhi sees in the task's created_resources);
    ``source`` the exported repository version href from the export's params.
    """
    from pulpcore.plugin.util import get_url

    cfg = plugin_notify_config()
    if cfg is None:
        return
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
    notify_export_complete(
        data,
        export_id=export_href(export, get_url),
        source=str(params.get("repository_version", "")),
        config=cfg,
        repository=repository,
        started_at=_iso(getattr(task, "started_at", None)),
    )
