"""``pulpcore-manager fedora_mirror_notifications``: list (or deliver) pending publish notices.

The operator's view of the plugin's outbox in Pulp's database; the same for every host, since
all workers share it. (The stand-alone CLI's file spool is listed by ``fedora-mirror
notifications``.)
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "List the publish notifications waiting in the database outbox (oldest first); with "
        "--flush, try to deliver them now."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
        parser.add_argument("--flush", action="store_true", help="try to deliver what is sendable now")

    def handle(self, *args: Any, **options: Any) -> None:
        from pulp_fedora_mirror.app import outbox
        from pulp_fedora_mirror.app.tasks.notify import plugin_notify_config

        if options["flush"]:
            cfg = plugin_notify_config()
            if cfg is None:
                raise CommandError("notifications are not configured (FEDORA_MIRROR_NOTIFY)")
            sent, failed = outbox.flush(cfg)
            self.stderr.write(f"{sent} delivered, {failed} still pending")
        rows = []
        for n in outbox.pending().select_related("task"):
            body = n.message.get("body", {})
            rows.append(
                {
                    "id": n.message.get("id"),
                    "topic": n.topic,
                    "export_id": body.get("export_id"),
                    "name": body.get("name"),
                    "enqueued_at": n.pulp_created.isoformat(),
                    "export_task_state": n.task.state if n.task else None,
                    "attempts": n.attempts,
                    "last_error": n.last_error,
                    "last_attempt_at": n.last_attempt_at.isoformat() if n.last_attempt_at else None,
                }
            )
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=1))
            return
        if not rows:
            self.stdout.write("no pending notifications")
            return
        for r in rows:
            self.stdout.write(
                f"{r['enqueued_at']}  {r['name']}  {r['export_id']}  attempts={r['attempts']}"
                + (f"  last error: {r['last_error']}" if r["last_error"] else "")
            )
