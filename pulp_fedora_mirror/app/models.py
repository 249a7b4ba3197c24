"""Database models: the mirror exporter (where and how to export) and one record per export."""

from __future__ import annotations

from django.db import models
from pulpcore.plugin.models import AutoAddObjPermsMixin, Export, Exporter

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
