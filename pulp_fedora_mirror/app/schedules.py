"""Periodic tasks the plugin registers with pulpcore's scheduler (TaskSchedule).

Where: pulpcore (3.123) registers its own schedules (cleanup, analytics, telemetry) in
``pulpcore.tasking._util.startup_hook()``, which every worker calls at start, so they follow the
settings in force. That hook has no extension point for plugins, so this one runs on
``post_migrate`` instead: ``pulpcore-manager migrate`` is the step every install and upgrade runs.
The function has pulpcore's shape (update_or_create while enabled, delete otherwise), so it can
move into a worker start hook as soon as pulpcore offers one.
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
