"""REST endpoints: thin viewsets that validate and dispatch tasks (pulp_file style).

``/pulp/api/v3/exporters/fedora_mirror/mirror/`` (CRUD + ``prune/``) and
``…/mirror/<pk>/exports/`` (run an export, list/read/delete export records), and
``/pulp/api/v3/fedora_mirror/promote/`` (one build, several tags, one repository version; routed
in ``urls.py`` since it belongs to no model).
"""

from __future__ import annotations

import uuid
from gettext import gettext as _
from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import extend_schema
from pulpcore.plugin.serializers import AsyncOperationResponseSerializer, ExporterSerializer
from pulpcore.plugin.tasking import dispatch
from pulpcore.plugin.util import get_url
from pulpcore.plugin.viewsets import (
    ExporterViewSet,
    ExportViewSet,
    OperationPostponedResponse,
    RolesMixin,
)
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.viewsets import ViewSet

from pulp_fedora_mirror.app import tasks
from pulp_fedora_mirror.app.models import MirrorExport, MirrorExporter
from pulp_fedora_mirror.app.serializers import (
    MirrorExporterSerializer,
    MirrorExportSerializer,
    MirrorPromoteSerializer,
    MirrorPruneSerializer,
)

_P = "fedora_mirror"


class MirrorExporterViewSet(ExporterViewSet, RolesMixin):
    """
    <!-- User-facing documentation, rendered as html-->
    A mirror exporter writes container repository versions into a content-addressed mirror tree
    (blobs and manifests, shared by all repositories) plus one crane_fedora metadata file per
    registry name. Exports are incremental and never delete; use `prune` to remove files no
    metadata references any more.
    """

    endpoint_name = "mirror"
    queryset = MirrorExporter.objects.all()
    serializer_class = MirrorExporterSerializer
    queryset_filtering_required_permission = f"{_P}.view_mirrorexporter"

    DEFAULT_ACCESS_POLICY = {
        "statements": [
            {
                "action": ["list", "retrieve", "my_permissions"],
                "principal": "authenticated",
                "effect": "allow",
            },
            {
                "action": ["create"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": f"has_model_or_domain_perms:{_P}.add_mirrorexporter",
            },
            {
                "action": ["update", "partial_update"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": [
                    f"has_model_or_domain_or_obj_perms:{_P}.change_mirrorexporter",
                    f"has_model_or_domain_or_obj_perms:{_P}.view_mirrorexporter",
                ],
            },
            {
                "action": ["destroy"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": [
                    f"has_model_or_domain_or_obj_perms:{_P}.delete_mirrorexporter",
                    f"has_model_or_domain_or_obj_perms:{_P}.view_mirrorexporter",
                ],
            },
            {
                # Prune deletes files from the tree: same weight as changing the exporter.
                "action": ["prune"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": [
                    f"has_model_or_domain_or_obj_perms:{_P}.change_mirrorexporter",
                    f"has_model_or_domain_or_obj_perms:{_P}.view_mirrorexporter",
                ],
            },
            {
                "action": ["list_roles", "add_role", "remove_role"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": [f"has_model_or_domain_or_obj_perms:{_P}.manage_roles_mirrorexporter"],
            },
        ],
        "creation_hooks": [
            {
                "function": "add_roles_for_object_creator",
                "parameters": {"roles": f"{_P}.mirrorexporter_owner"},
            },
        ],
        "queryset_scoping": {"function": "scope_queryset"},
    }
    LOCKED_ROLES = {
        f"{_P}.mirrorexporter_creator": [f"{_P}.add_mirrorexporter"],
        f"{_P}.mirrorexporter_owner": [
            f"{_P}.view_mirrorexporter",
            f"{_P}.change_mirrorexporter",
            f"{_P}.delete_mirrorexporter",
            f"{_P}.export_mirrorexporter",
            f"{_P}.manage_roles_mirrorexporter",
        ],
        f"{_P}.mirrorexporter_viewer": [f"{_P}.view_mirrorexporter"],
    }

    @extend_schema(
        request=MirrorPruneSerializer,
        description="Trigger a task that removes tree files no metadata has referenced for "
        "prune_grace seconds.",
        responses={202: AsyncOperationResponseSerializer},
    )
    @action(detail=True, methods=["post"], serializer_class=MirrorPruneSerializer)
    def prune(self, request: Any, pk: str | None = None) -> OperationPostponedResponse:
        """Dispatch ``prune_mirror``; the exporter is exclusive so no export runs meanwhile."""
        exporter = self.get_object()
        # Prune deletes files: the allowed paths (or a symlink in path) may have changed since the
        # exporter was created, exactly as for an export.
        ExporterSerializer.validate_path(exporter.path, check_is_dir=True)
        ExporterSerializer.validate_path(exporter.metadata_path, check_is_dir=True)
        serializer = MirrorPruneSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = dispatch(
            tasks.prune_mirror,
            exclusive_resources=[exporter],
            kwargs={"exporter_pk": str(exporter.pk), "dry_run": serializer.validated_data["dry_run"]},
        )
        return OperationPostponedResponse(task, request)


class MirrorExportViewSet(ExportViewSet):
    """
    <!-- User-facing documentation, rendered as html-->
    Exports run through a mirror exporter. POST to run one (202 + task); each completed task
    leaves a record with the request `params` and the export `summary`.
    """

    parent_viewset = MirrorExporterViewSet
    serializer_class = MirrorExportSerializer
    queryset = MirrorExport.objects.all()

    DEFAULT_ACCESS_POLICY = {
        "statements": [
            {
                "action": ["list", "retrieve"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": f"has_exporter_model_or_domain_or_obj_perms:{_P}.view_mirrorexporter",
            },
            {
                "action": ["create"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": [
                    f"has_exporter_model_or_domain_or_obj_perms:{_P}.export_mirrorexporter",
                    "has_repo_or_repo_ver_param_model_or_domain_or_obj_perms:"
                    "container.view_containerrepository",
                ],
            },
            {
                "action": ["destroy"],
                "principal": "authenticated",
                "effect": "allow",
                "condition": f"has_exporter_model_or_domain_or_obj_perms:{_P}.change_mirrorexporter",
            },
        ],
    }

    @extend_schema(
        request=MirrorExportSerializer,
        description="Trigger a task that exports a container repository version to the mirror tree.",
        responses={202: AsyncOperationResponseSerializer},
    )
    def create(self, request: Any, exporter_pk: str, **kwargs: Any) -> OperationPostponedResponse:
        """Validate, then dispatch ``export_to_mirror``.

        The exporter is the exclusive resource (one writer per tree inside Pulp); the repository
        is shared, so syncs into it wait but other exports of it may read concurrently.
        """
        exporter = self.get_parent_object().cast()  # 404 for an unknown exporter, not a 500
        if not isinstance(exporter, MirrorExporter):
            raise Http404
        # The allowed paths may have changed since the exporter was created.
        ExporterSerializer.validate_path(exporter.path, check_is_dir=True)
        ExporterSerializer.validate_path(exporter.metadata_path, check_is_dir=True)
        serializer = MirrorExportSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        repo_version = serializer.validated_data["repository_version"]
        repository = serializer.validated_data["repository"]
        # Held exclusively by the export task and taken shared by the notification send task it
        # dispatches at its end: pulpcore then starts the send only after the export has ended.
        notify_resource = f"fedora_mirror:export-notice:{uuid.uuid4()}"
        task = dispatch(
            tasks.export_to_mirror,
            exclusive_resources=[exporter, notify_resource],
            shared_resources=[repository],
            kwargs={
                "notify_resource": notify_resource,
                "exporter_pk": str(exporter.pk),
                "repo_version_pk": str(repo_version.pk),
                "name": serializer.validated_data["name"],
                # The version's href, cheap here (the API's URL resolver is warm), ~0.4 s in the task.
                "source_href": f"{get_url(repo_version.repository.cast())}versions/{repo_version.number}/",
            },
        )
        return OperationPostponedResponse(task, request)


def _has_perm(user: Any, permission: str, obj: Any) -> bool:
    """Model-wide, domain or object permission (pulpcore's has_model_or_domain_or_obj_perms)."""
    if user.has_perm(permission) or user.has_perm(permission, obj):
        return True
    return bool(settings.DOMAIN_ENABLED and user.has_perm(permission, obj=obj.pulp_domain))


class MirrorPromoteViewSet(ViewSet):
    """
    <!-- User-facing documentation, rendered as html-->
    Promote one build to several tags in one new repository version: Bodhi's
    `<version>-<release>`, `<version>`, `latest` (or `testing`) scheme. The build (a manifest or
    manifest list, given by a source tag or digest) comes with everything it references and with
    its signatures (pulp-container signatures and sigstore `sha256-<hex>.sig` tags).
    """

    serializer_class = MirrorPromoteSerializer
    # Everyone authenticated may ask; create() checks the two repositories like pulp-container's
    # copy_tags (modify_content on the destination, view on the source). Object-level conditions
    # of an access policy need a model viewset's get_object(), which this endpoint does not have.
    DEFAULT_ACCESS_POLICY = {
        "statements": [{"action": ["create"], "principal": "authenticated", "effect": "allow"}]
    }

    @extend_schema(
        request=MirrorPromoteSerializer,
        description="Trigger a task that gives one build all its tags in one new version of the "
        "destination repository (exclusive on it, like pulp-container's copy_tags).",
        summary="Promote a build",
        responses={202: AsyncOperationResponseSerializer},
    )
    def create(self, request: Any, **kwargs: Any) -> OperationPostponedResponse:
        """Validate, check permissions, dispatch ``promote_build``."""
        serializer = MirrorPromoteSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = data["source_repository_version"]
        source = version.repository.cast()
        destination = data["destination_repository"]
        user = request.user
        if not _has_perm(user, "container.view_containerrepository", source):
            raise PermissionDenied(_("You may not view the source repository '{}'.").format(source.name))
        if not _has_perm(user, "container.modify_content_containerrepository", destination):
            raise PermissionDenied(
                _("You may not modify the content of repository '{}'.").format(destination.name)
            )
        task = dispatch(
            tasks.promote_build,
            exclusive_resources=[destination],
            shared_resources=[source],
            kwargs={
                "source_version_pk": str(version.pk),
                "destination_pk": str(destination.pk),
                "tags": list(data["tags"]),
                "digest": data["digest"],
                "aliases": list(data["aliases"]),
            },
        )
        return OperationPostponedResponse(task, request)
