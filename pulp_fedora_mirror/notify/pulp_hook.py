"""The Pulp side of notifications: what the export task's ``after_export`` hook calls.

Kept apart from the rest of :mod:`pulp_fedora_mirror.notify` so that package never imports
Django or pulpcore (Bodhi and the CLI use it without them); everything Pulp-specific is imported
inside the function.

Wiring (``pulp_fedora_mirror/app/tasks/export.py``)::

    def after_export(export, summary):
        from pulp_fedora_mirror.notify.pulp_hook import notify_from_pulp
        notify_from_pulp(export, summary)

Settings (Pulp's ``settings.py``)::

    FEDORA_MIRROR_NOTIFY = {
        "url": "amqps://rabbitmq.example.org/%2Fpubsub",
        "topic_prefix": "org.fedoraproject.prod",
        "spool_dir": "/var/lib/pulp/fedora-mirror/outbox",
        "certfile": "...", "keyfile": "...", "ca_cert": "...",
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

from .config import SYSTEM_CONFIG

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


def notify_from_pulp(export: Any, summary: Any) -> None:
    """Queue and try to send the ``export.complete`` message for a saved MirrorExport.

    ``export_id`` is the export's REST href (what Bodhi sees in the task's created_resources);
    ``source`` the exported repository version href from the export's params.
    """
    from django.conf import settings
    from pulpcore.plugin.util import get_url

    from . import notify_export_complete

    conf = getattr(settings, SETTING, None)
    if not conf and not _enabled_elsewhere():
        log.debug("notifications off (no %s setting)", SETTING)
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
        config={str(k).lower(): v for k, v in dict(conf or {}).items()},
        repository=repository,
        started_at=_iso(getattr(task, "started_at", None)),
    )
