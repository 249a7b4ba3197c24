"""Database models: the mirror exporter (where and how to export), one record per export, and the
outbox of publish notifications."""

from __future__ import annotations

from django.db import models
from pulpcore.plugin.models import AutoAddObjPermsMixin, BaseModel, Export, Exporter, Task

#: Default grace period of ``prune``: files stay this long after the last reference went away,
#: longer than any mirror's sync cycle (docs/layout.md §3).
DEFAULT_PRUNE_GRACE = 7 * 24 * 3600


class MirrorExporter(Exporter, AutoAddObjPermsMixin):
    """Exports container repository versions into one mirror tree + crane metadata directory.

    One exporter = one tree (``path``) and its metadata directory; many repositories may be
    exported through it, each under its own registry name. The exporter is the exclusive
    resource of every export and prune task, which serialises writers per tree inside Pulp
    (the core additionally takes an ``flock`` for writers outside Pulp).
    """

    TYPE = "mirror"

    #: Top of the mirror tree (a MirrorManager module), e.g. ``/srv/pub/containers``.
    path = models.TextField()
    #: crane_fedora's ``data_dir``; never inside the mirrored tree.
    metadata_path = models.TextField()
    #: Absolute URL of ``path`` on the master mirror, ending in ``/``.
    master_url = models.TextField()
    #: Absolute URL of ``path`` behind the mirror redirector, ending in ``/``; null = master only.
    mirror_url = models.TextField(null=True)
    #: MirrorManager module name (``fullfiletimelist-<module>``); null = basename of ``path``.
    module = models.TextField(null=True)
    #: Seconds an unreferenced file survives before ``prune`` removes it.
    prune_grace = models.PositiveIntegerField(default=DEFAULT_PRUNE_GRACE)
    #: Allow repositories marked protected into the (publicly mirrored) tree.
    allow_protected = models.BooleanField(default=False)

    class Meta:
        default_related_name = "%(app_label)s_%(model_name)s"
        permissions = [
            ("manage_roles_mirrorexporter", "Can manage roles on mirror exporters"),
            ("export_mirrorexporter", "Can export repositories through a mirror exporter"),
        ]


class MirrorExport(Export):
    """One finished export run: ``params`` as requested, ``summary`` as the core reported it.

    Saved only when the export has finished (``tasks/export.py``), so ``summary`` is never null.
    """

    summary = models.JSONField()

    class Meta:
        default_related_name = "%(app_label)s_%(model_name)s"


class MirrorNotification(BaseModel):
    """A publish notification waiting to be sent: the plugin's outbox, in Pulp's database.

    Why the database and not a spool directory: every Pulp worker, on any host, sees the same
    rows, so whichever worker runs next delivers a notice another worker recorded. A row is
    written in the same transaction as the export record it announces (a notice exists exactly
    for the finished exports) and deleted only after the broker confirmed the message. Senders
    lock the row (``SELECT … FOR UPDATE SKIP LOCKED``), so two workers never send it at once.

    ``task`` is the export task: a notice is sent only once that task has ended, i.e. after it
    released the exporter's lock (null: the task record was purged, or the notice came from an
    old spool).
    """

    #: Full routing key (prefix included), as in :class:`pulp_fedora_mirror.notify.Message`.
    topic = models.TextField()
    #: The export's href: one notice per export and topic, however often a task is retried.
    dedup_key = models.TextField()
    #: ``Message.to_dict()``: id, headers, body, content type and encoding.
    message = models.JSONField()
    task = models.ForeignKey(Task, null=True, on_delete=models.SET_NULL, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(null=True)
    last_attempt_at = models.DateTimeField(null=True)

    class Meta:
        default_related_name = "%(app_label)s_%(model_name)s"
        constraints = [
            models.UniqueConstraint(fields=["topic", "dedup_key"], name="fedora_mirror_notification_once"),
        ]
