"""Routes pulpcore does not make for us: the model-less promote endpoint.

pulpcore routes every NamedModelViewSet itself; a plain ViewSet needs a urlpattern (pulpcore
includes a plugin's ``urls.py`` at the root, so the API root is spelled out here, as pulpcore
does for its own ``repositories/reclaim_space/``).
"""

from django.conf import settings
from django.urls import path

from pulp_fedora_mirror.app.viewsets import MirrorPromoteViewSet

_view = MirrorPromoteViewSet.as_view({"post": "create"})

if settings.DOMAIN_ENABLED:
    _root = settings.V3_DOMAIN_API_ROOT_NO_FRONT_SLASH
else:
    _root = settings.V3_API_ROOT_NO_FRONT_SLASH

urlpatterns = [path(f"{_root}fedora_mirror/promote/", _view, name="fedora-mirror-promote")]
