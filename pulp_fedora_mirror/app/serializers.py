"""REST serializers: validate exporter configuration and export requests before any task runs.

Everything a user can get wrong (paths outside ALLOWED_EXPORT_PATHS, relative URLs, a name clients
could not pull) is rejected here with a 400, so tasks only fail for reasons found at run time.
"""

from __future__ import annotations

import os
from gettext import gettext as _
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from pulp_container.app.models import ContainerDistribution, ContainerRepository
from pulpcore.app.global_access_conditions import has_model_or_domain_perms
from pulpcore.plugin.serializers import (
    DetailRelatedField,
    ExporterSerializer,
    ExportSerializer,
    RepositoryVersionRelatedField,
)
from pulpcore.plugin.util import get_domain
from rest_framework import serializers

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.app.models import DEFAULT_PRUNE_GRACE, MirrorExport, MirrorExporter

#: Longest file name we create from user input, leaving room for the ``.<name>.tmp-<12 hex>``
#: temp name next to it within the usual 255-byte limit.
NAME_BYTES_MAX = 255 - len(".") - len(".tmp-") - 12


def normalise_base_url(value: str, field: str) -> str:
    """Return ``value`` as an absolute http(s) URL ending in ``/``, or raise a clear 400.

    The rule is :func:`pulp_fedora_mirror.layout.base_url`, the one crane_fedora applies when it
    reads the metadata, so an export can never write URLs every crane then refuses.
    """
    try:
        return layout.base_url(value, field)
    except layout.InvalidURL as exc:
        raise serializers.ValidationError(str(exc)) from None


class _CheckedHrefMixin:
    """Reject what pulpcore's href fields would turn into a 500 (non-strings, PRNs of nothing)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("incorrect_type", data_type=type(data).__name__)  # type: ignore[attr-defined]
        try:
            return super().to_internal_value(data)  # type: ignore[misc]
        except (ObjectDoesNotExist, DjangoValidationError, ValueError, TypeError, LookupError):
            self.fail("does_not_exist")  # type: ignore[attr-defined]


class _RepositoryVersionField(_CheckedHrefMixin, RepositoryVersionRelatedField):
    pass


class _RepositoryField(_CheckedHrefMixin, DetailRelatedField):
    """A container repository (any container repository type) by href.

    The queryset in the class body, as pulpcore's DetailRelatedField asks of its subclasses; the
    view pattern here too, so each field declares only what it means.
    """

    queryset = ContainerRepository.objects.all()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(view_name_pattern=r"repositories(-.*/.*)-detail", **kwargs)


def _one_version(data: dict[str, Any], repo_key: str, version_key: str) -> Any:
    """The repository version named by exactly one of ``repo_key`` (its latest version) or
    ``version_key``; a 400 naming both fields when neither or both are given."""
    has_repo = data.get(repo_key) is not None
    if has_repo == (data.get(version_key) is not None):
        raise serializers.ValidationError(
            _("Exactly one of '{}' or '{}' must be given.").format(repo_key, version_key)
        )
    return data[repo_key].cast().latest_version() if has_repo else data[version_key]


class MirrorExporterSerializer(ExporterSerializer):
    """Configuration of one mirror tree and its crane metadata directory."""

    path = serializers.CharField(
        help_text=_("Top of the mirror tree (a MirrorManager module), inside ALLOWED_EXPORT_PATHS.")
    )
    metadata_path = serializers.CharField(
        help_text=_("crane_fedora metadata directory (not mirrored), inside ALLOWED_EXPORT_PATHS.")
    )
    master_url = serializers.CharField(
        help_text=_("Absolute http(s) URL of the tree on the master mirror; a '/' is appended if missing.")
    )
    mirror_url = serializers.CharField(
        help_text=_("Absolute http(s) URL of the tree behind the mirror redirector, or null."),
        required=False,
        allow_null=True,
        default=None,
    )
    module = serializers.CharField(
        help_text=_("MirrorManager module name (fullfiletimelist-<module>); default: basename of path."),
        required=False,
        allow_null=True,
        default=None,
    )
    prune_grace = serializers.IntegerField(
        help_text=_("Seconds an unreferenced file is kept before prune removes it."),
        required=False,
        min_value=0,
        max_value=2**31 - 1,  # the column is a (positive) integer: larger is a DB error, a 500
        default=DEFAULT_PRUNE_GRACE,
    )
    allow_protected = serializers.BooleanField(
        help_text=_("Allow protected (private) repositories into the mirrored tree."),
        required=False,
        default=False,
    )

    def validate_allow_protected(self, value: bool) -> bool:
        """Only an administrator may let protected content into a mirrored (public) tree.

        Protected means served by a private distribution: an exporter owner who may view such a
        repository must still not be able to publish it to every mirror by flipping this flag.
        Keeping a value an administrator already set needs nothing. Checked where there is a
        request: updates are re-validated inside their task, which has no user, after the API
        already checked the one who asked.
        """
        already = bool(self.instance is not None and getattr(self.instance, "allow_protected", False))
        request = self.context.get("request")
        if request is None:
            return value
        if value and not already and not getattr(request.user, "is_superuser", False):
            raise serializers.ValidationError(
                _("Only an administrator may allow protected repositories into a mirrored tree.")
            )
        return value

    @staticmethod
    def _absolute(value: str, field: str) -> str:
        """Only an absolute path means the same directory to the API and to the worker."""
        if not os.path.isabs(value):
            raise serializers.ValidationError(_("{} must be an absolute path").format(field))
        return ExporterSerializer.validate_path(value, check_is_dir=True)

    def validate_path(self, value: str) -> str:  # type: ignore[override]
        """The tree must lie under ALLOWED_EXPORT_PATHS and be a directory if it exists."""
        return self._absolute(value, "path")

    def validate_metadata_path(self, value: str) -> str:
        """Same rule as ``path``: the task writes there as the Pulp user."""
        return self._absolute(value, "metadata_path")

    def validate_master_url(self, value: str) -> str:
        return normalise_base_url(value, "master_url")

    def validate_mirror_url(self, value: str | None) -> str | None:
        return None if value in (None, "") else normalise_base_url(value, "mirror_url")

    def validate_module(self, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            layout.filelist_name(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        if len(os.fsencode(layout.filelist_name(value))) > NAME_BYTES_MAX:
            raise serializers.ValidationError(_("module name is too long for a file name"))
        return value

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Reject a metadata directory inside the tree (or the reverse).

        Metadata is mutable and must never be mirrored (docs/layout.md §1); a tree inside the
        metadata directory would make crane_fedora read blobs as candidate metadata files.
        """
        data = super().validate(data)
        path = data.get("path", getattr(self.instance, "path", None))
        meta = data.get("metadata_path", getattr(self.instance, "metadata_path", None))
        if path and meta:
            rp = os.path.realpath(path).rstrip("/") + "/"
            rm = os.path.realpath(meta).rstrip("/") + "/"
            if rp.startswith(rm) or rm.startswith(rp):
                raise serializers.ValidationError(
                    {"metadata_path": _("metadata_path and path must not contain each other.")}
                )
            self._check_shared_tree(rp, rm)
        return data

    def _check_shared_tree(self, rp: str, rm: str) -> None:
        """Exporters sharing (or nesting) a tree must share the metadata directory too.

        ``prune`` keeps only files that metadata in *its* metadata directory references: a second
        exporter writing into the same tree with other metadata would have its files deleted.
        """
        others = MirrorExporter.objects.filter(pulp_domain=get_domain())
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        for other in others.only("name", "path", "metadata_path", "pulp_domain"):
            op = os.path.realpath(other.path).rstrip("/") + "/"
            om = os.path.realpath(other.metadata_path).rstrip("/") + "/"
            tree_overlap = op.startswith(rp) or rp.startswith(op)
            if (tree_overlap or om.startswith(rm) or rm.startswith(om)) and not self._may_change(other):
                # Sharing a tree or metadata directory lets this exporter overwrite the other's
                # metadata and prune its tree: only for users who may change the other one. The
                # message does not name it (the user may not even see it).
                raise serializers.ValidationError(
                    {"path": _("path or metadata_path overlaps those of an exporter you may not change.")}
                )
            if op.startswith(rm) or rm.startswith(op) or om.startswith(rp) or rp.startswith(om):
                # The same rule as for one exporter: metadata is never inside a mirrored tree.
                raise serializers.ValidationError(
                    {
                        "metadata_path": _(
                            "metadata_path and path must not contain the path or metadata_path of "
                            "another exporter."
                        )
                    }
                )
            if tree_overlap and om != rm:
                raise serializers.ValidationError(
                    {
                        "path": _(
                            "path overlaps the tree of exporter '{name}' whose metadata_path is "
                            "'{meta}'; exporters sharing a tree must share metadata_path, or prune "
                            "of one would delete the other's files."
                        ).format(name=other.name, meta=other.metadata_path)
                    }
                )

    def _may_change(self, other: MirrorExporter) -> bool:
        """Whether the requesting user holds change_mirrorexporter on ``other``."""
        request = self.context.get("request")
        if getattr(request, "user", None) is None:
            return True  # not a REST request (shell, migrations): no user to check
        perm = "fedora_mirror.change_mirrorexporter"
        # Model or domain level: pulpcore's check (``other`` is in the request's domain, see above).
        return has_model_or_domain_perms(request, None, "", perm) or request.user.has_perm(perm, other)

    class Meta:
        model = MirrorExporter
        fields = (
            *ExporterSerializer.Meta.fields,
            "path",
            "metadata_path",
            "master_url",
            "mirror_url",
            "module",
            "prune_grace",
            "allow_protected",
        )


def default_name(repository: ContainerRepository) -> str:
    """The registry name an export uses when none is given.

    The base_path of a ContainerDistribution serving the repository is what clients already pull
    from Pulp, so the mirror keeps that name; with no distribution, the repository name.
    """
    dist = ContainerDistribution.objects.filter(repository=repository).order_by("base_path").first()
    return dist.base_path if dist is not None else repository.name


class MirrorExportSerializer(ExportSerializer):
    """Export request (write) and export record (read)."""

    repository_version = _RepositoryVersionField(
        help_text=_("A container repository version to export. Give this or 'repository'."),
        required=False,
        write_only=True,
    )
    repository = _RepositoryField(
        help_text=_(
            "A container repository whose latest version is exported. Give this or 'repository_version'."
        ),
        required=False,
        write_only=True,
    )
    name = serializers.CharField(
        help_text=_(
            "Registry name clients pull (e.g. 'fedora/busybox'). Default: the base_path of "
            "a container distribution serving the repository, else the repository name."
        ),
        required=False,
        write_only=True,
    )
    summary = serializers.JSONField(
        help_text=_("What the export did (counts, bytes, metadata file)."), read_only=True
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Exactly one of repository/repository_version; resolve the version and the name."""
        data = super().validate(data)
        repo_version = _one_version(data, "repository", "repository_version")
        repository = repo_version.repository.cast()
        if not isinstance(repository, ContainerRepository):
            raise serializers.ValidationError(
                _("Only container repositories can be exported, not '{}'.").format(repository.pulp_type)
            )
        data["repository_version"] = repo_version
        data["repository"] = repository
        name = data.get("name")
        if name is None:
            name = default_name(repository)
            if not layout.is_valid_name(name):
                raise serializers.ValidationError(
                    {"name": _("Default name '{}' is not a valid registry name; give 'name'.").format(name)}
                )
        elif not layout.is_valid_name(name):
            raise serializers.ValidationError(
                {
                    "name": _(
                        "'{}' is not a valid registry name (lower-case path components "
                        "[a-z0-9] separated by '.', '_', '__', '-' or '/')."
                    ).format(name)
                }
            )
        if any(len(c) + len(".json") > NAME_BYTES_MAX for c in name.split("/")):
            raise serializers.ValidationError(
                {"name": _("A component of '{}' is too long for a metadata file name.").format(name)}
            )
        data["name"] = name
        return data

    class Meta:
        model = MirrorExport
        fields = (
            *ExportSerializer.Meta.fields,
            "repository_version",
            "repository",
            "name",
            "summary",
        )


class MirrorPruneSerializer(serializers.Serializer):
    """Body of ``POST …/mirror/<pk>/prune/``."""

    dry_run = serializers.BooleanField(
        help_text=_("Only report what would be removed."), required=False, default=False
    )


#: pulp-container's rule for tag names (``pulp_container.app.serializers.VALID_TAG_REGEX``).
TAG_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
#: At most this many ``tags`` or ``aliases`` per promote: a build has a handful, and each is checked
#: (and looked up) before the task is dispatched, so an unbounded list was unbounded work.
MAX_TAGS = 256


class _TagField(serializers.RegexField):
    """A tag name: a JSON string matching :data:`TAG_REGEX`.

    DRF's CharField reports a wrong type (a list, an object, a boolean) with the same ``invalid``
    message as a wrong pattern but formats it without the value: a message naming the value made
    that a KeyError, a 500. Wrong types get their own message here; the pattern's message names the
    value the Django way (``%(value)s``, filled in by the RegexValidator).
    """

    default_error_messages = {
        "invalid": _(
            "'%(value)s' is not a valid tag: ASCII letters, digits, '_', '.', '-', not starting "
            "with '.' or '-'."
        ),
        "not_a_string": _("A tag must be a string, not {type}."),
    }

    def __init__(self, help_text: str) -> None:
        super().__init__(regex=TAG_REGEX, max_length=128, help_text=help_text)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", type=type(data).__name__)
        return super().to_internal_value(data)


class MirrorPromoteSerializer(serializers.Serializer):
    """Body of ``POST /pulp/api/v3/fedora_mirror/promote/``: one build, all its tags, one version."""

    source_repository = _RepositoryField(
        help_text=_(
            "Container repository to promote from (its latest version). Or source_repository_version."
        ),
        required=False,
    )
    source_repository_version = _RepositoryVersionField(
        help_text=_("Exact container repository version to promote from."), required=False
    )
    destination_repository = _RepositoryField(
        help_text=_("Container repository that gets the new version (e.g. the stable one)."),
    )
    tags = serializers.ListField(
        child=_TagField(_("A tag of the source version.")),
        max_length=MAX_TAGS,
        required=False,
        default=list,
        help_text=_("Source tags, each copied under its own name (with aliases: exactly one)."),
    )
    digest = serializers.RegexField(
        regex=r"^sha256:[0-9a-f]{64}$",
        required=False,
        allow_null=True,
        default=None,
        help_text=_("Digest of a manifest (list) of the source version: the build, instead of a tag."),
        error_messages={"invalid": _("digest must look like sha256:<64 lower-case hex digits>")},
    )
    aliases = serializers.ListField(
        child=_TagField(_("A tag name to create in the destination.")),
        max_length=MAX_TAGS,
        required=False,
        default=list,
        help_text=_("More tags for the build, e.g. ['41', 'latest'] (or ['testing'])."),
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Pin the source version and check the build exists there, so the task cannot miss it."""
        from pulp_fedora_mirror.app.tasks.promote import resolve_build

        version = _one_version(data, "source_repository", "source_repository_version")
        source = version.repository.cast()
        if not isinstance(source, ContainerRepository):
            raise serializers.ValidationError(
                {"source_repository_version": _("Not a container repository version.")}
            )
        tags, digest, aliases = data["tags"], data["digest"], data["aliases"]
        if not tags and digest is None:
            raise serializers.ValidationError(_("Give the build as 'tags' (a tag name) or 'digest'."))
        if tags and digest is not None:
            raise serializers.ValidationError(_("Give the build either by 'tags' or by 'digest', not both."))
        if digest is not None and not aliases:
            raise serializers.ValidationError(
                {"aliases": _("A build given by digest needs at least one alias.")}
            )
        if aliases and len(tags) > 1:
            raise serializers.ValidationError(
                {"aliases": _("Aliases name one build: give exactly one tag (or a digest) with them.")}
            )
        names = [*tags, *aliases]
        if len(set(names)) != len(names):
            raise serializers.ValidationError(_("A tag name is given twice: {}.").format(", ".join(names)))
        try:
            for name in tags:
                resolve_build(version, name, None)
            if digest is not None:
                resolve_build(version, None, digest)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        data["source_repository_version"] = version
        data["destination_repository"] = data["destination_repository"].cast()
        return data
