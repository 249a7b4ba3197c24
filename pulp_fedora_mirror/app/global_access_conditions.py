"""Access-policy conditions for endpoints nested below a mirror exporter.

pulpcore has ``has_repository_*`` conditions for URLs nested below a repository but nothing for
exporters (its own exporters are admin-only), so the ``…/mirror/<pk>/exports/`` endpoint needs
this one to let an exporter's owner run and list exports without a model-wide permission.
"""

from __future__ import annotations

from typing import Any

from pulpcore.app.global_access_conditions import has_model_or_domain_perms

from pulp_fedora_mirror.app.models import MirrorExporter


def has_exporter_model_or_domain_or_obj_perms(request: Any, view: Any, action: str, permission: str) -> bool:
    """True if the user has ``permission`` globally or on the domain (pulpcore's own check), or on
    the exporter in the URL."""
    if has_model_or_domain_perms(request, view, action, permission):
        return True
    exporter_pk = view.kwargs.get("exporter_pk")
    if exporter_pk is None:
        return False
    exporter = MirrorExporter.objects.filter(pk=exporter_pk).first()
    return exporter is not None and request.user.has_perm(permission, exporter)
