"""Task functions dispatched by the viewsets (dotted paths are stored in the task queue)."""

from pulp_fedora_mirror.app.tasks.export import after_export, export_to_mirror
from pulp_fedora_mirror.app.tasks.notify import flush_notifications
from pulp_fedora_mirror.app.tasks.promote import promote_build
from pulp_fedora_mirror.app.tasks.prune import prune_mirror

__all__ = ["after_export", "export_to_mirror", "flush_notifications", "promote_build", "prune_mirror"]
