"""``POST <API_ROOT>fedora_mirror/carry_signatures/``: promotion's missing half (signatures).

A plain view rather than a viewset action: it acts on two pulp-container repositories, not on a
model of this plugin. pulpcore includes a plugin's ``app/urls.py`` at the root.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import extend_schema
from pulp_container.app.models import ContainerRepository
from pulp_container.app.serializers import CopySerializer
from pulpcore.plugin.serializers import AsyncOperationResponseSerializer
from pulpcore.plugin.tasking import dispatch
from pulpcore.plugin.viewsets import NamedModelViewSet, OperationPostponedResponse
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from pulp_fedora_mirror.app.signatures import carry_signatures


class CarrySignaturesSerializer(CopySerializer):
    """``source_repository`` (its latest version) or ``source_repository_version``, and ``repository``."""

    repository = serializers.CharField(help_text="href of the container repository promoted into")


def _may(user: Any, perm: str, obj: Any) -> bool:
    return bool(user.has_perm(perm) or user.has_perm(perm, obj))


class CarrySignaturesView(APIView):
    """Add the source's signatures of every manifest the destination holds (a task)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=CarrySignaturesSerializer,
        description="Trigger a task that adds to `repository` the signature content (simple-signing "
        "ManifestSignature, sigstore `sha256-<hex>.sig` tags) the source has for its manifests.",
        responses={202: AsyncOperationResponseSerializer},
    )
    def post(self, request: Any) -> OperationPostponedResponse:
        serializer = CarrySignaturesSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        source = serializer.validated_data["source_repository_version"]
        repository = NamedModelViewSet.get_resource(
            serializer.validated_data["repository"], ContainerRepository
        )
        # The same rights copy_tags asks for: change the destination, read the source.
        if not _may(request.user, "container.modify_content_containerrepository", repository):
            raise PermissionDenied("you may not modify the content of this repository")
        if not _may(request.user, "container.view_containerrepository", source.repository.cast()):
            raise PermissionDenied("you may not read the source repository")
        task = dispatch(
            carry_signatures,
            exclusive_resources=[repository],
            shared_resources=[source.repository],
            kwargs={"source_version_pk": str(source.pk), "repository_pk": str(repository.pk)},
        )
        return OperationPostponedResponse(task, request)


urlpatterns = [
    path(
        f"{settings.V3_API_ROOT_NO_FRONT_SLASH}fedora_mirror/carry_signatures/",
        CarrySignaturesView.as_view(),
        name="fedora-mirror-carry-signatures",
    )
]
