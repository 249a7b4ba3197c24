"""Periodic tasks the plugin registers with pulpcore's scheduler (TaskSchedule).

Done on ``post_migrate``, like pulpcore's own cleanup schedules: ``pulpcore-manager migrate`` is
the step every install and upgrade runs, and it sees the settings in force.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

FLUSH_TASK = "pulp_fedora_mirror.app.tasks.notify.flush_notifications"
FLUSH_SCHEDULE = "Retry pending fedora_mirror publish notifications"


def configure_notification_retry(sender: Any = None, **kwargs: Any) -> None:
    """Schedule :func:`flush_notifications` while notifications are configured, remove it otherwise."""
    from pulpcore.plugin.models import TaskSchedule

    from pulp_fedora_mirror.app.tasks.notify import plugin_notify_config, retry_interval

    if plugin_notify_config() is not None:
        TaskSchedule.objects.update_or_create(
            name=FLUSH_SCHEDULE,
            defaults={"task_name": FLUSH_TASK, "dispatch_interval": timedelta(seconds=retry_interval())},
        )
    else:
        TaskSchedule.objects.filter(task_name=FLUSH_TASK).delete()
