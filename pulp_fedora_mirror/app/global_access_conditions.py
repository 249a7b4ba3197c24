"""Access-policy conditions for endpoints nested below a mirror exporter.

pulpcore has ``has_repository_*`` conditions for URLs nested below a repository but nothing for
exporters (its own exporters are admin-only), so the ``…/mirror/<pk>/exports/`` endpoint needs
this one to let an exporter's owner run and list exports without a model-wide permission.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from pulp_fedora_mirror.app.models import MirrorExporter


def has_exporter_model_or_domain_or_obj_perms(request: Any, view: Any, action: str, permission: str) -> bool:
    """True if the user has ``permission`` globally, on the domain, or on the exporter in the URL."""
    if request.user.has_perm(permission):
        return True
    if settings.DOMAIN_ENABLED and request.user.has_perm(permission, obj=request.pulp_domain):
        return True
    exporter_pk = view.kwargs.get("exporter_pk")
    if exporter_pk is None:
        return False
    exporter = MirrorExporter.objects.filter(pk=exporter_pk).first()
    return exporter is not None and request.user.has_perm(permission, exporter)
