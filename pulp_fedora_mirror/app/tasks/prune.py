"""The prune task: remove tree files unreferenced for the exporter's grace period."""

from __future__ import annotations

import dataclasses
from typing import Any

from pulp_fedora_mirror.app.models import MirrorExporter
from pulp_fedora_mirror.export.prune import prune


def prune_mirror(exporter_pk: str, dry_run: bool = False) -> dict[str, Any]:
    """Run the core's ``prune`` on the exporter's tree; the summary becomes the task result.

    Dispatched with the exporter as exclusive resource, so no export of this tree runs at the
    same time inside Pulp (the core's flock covers writers outside Pulp).
    """
    exporter = MirrorExporter.objects.get(pk=exporter_pk)
    summary = prune(
        exporter.path,
        exporter.metadata_path,
        exporter.prune_grace,
        dry_run=dry_run,
        module=exporter.module,
    )
    return dataclasses.asdict(summary)
