"""The export task: turn a Pulp repository version into the core's input and run the core.

All Pulp knowledge (content models, artifact storage, progress reports, export records) stays
here; the core (``pulp_fedora_mirror.export``) only sees plain dataclasses.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from django.db import transaction
from django.db.models import Q
from pulp_container.app.models import Blob, ContainerDistribution, Manifest, ManifestSignature, Tag
from pulpcore.plugin.models import (
    Artifact,
    ContentArtifact,
    CreatedResource,
    ProgressReport,
    RepositoryVersion,
    Task,
)
from pulpcore.plugin.util import get_url

from pulp_fedora_mirror.app.models import MirrorExport, MirrorExporter
from pulp_fedora_mirror.app.tasks.notify import dispatch_send, queue_notification
from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.source import (
    BlobSource,
    ExportTarget,
    ManifestSource,
    RepositorySource,
)

log = logging.getLogger(__name__)

#: Every progress report code of this plugin starts with this (``fedora_mirror.blobs_linked``…).
CODE_PREFIX = "fedora_mirror."


class ExportSourceError(RuntimeError):
    """The repository version cannot be exported as it is (missing bytes, unmigrated data)."""


class TaskProgress(contextlib.ExitStack):
    """Adapter from the core's ``Progress`` protocol to pulpcore ProgressReports.

    One report per code, each a context manager of its own: ``start`` enters it (state running),
    ``finish`` leaves it (completed). The core's phases overlap rather than nest, so each report
    gets its own :class:`~contextlib.ExitStack`, entered into this one: leaving ``with
    TaskProgress()`` on an exception leaves every report still open with that exception (failed
    or canceled, by pulpcore's own ``ProgressReport.__exit__``), so the task view never shows a
    report running forever.
    """

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, tuple[ProgressReport, contextlib.ExitStack]] = {}

    @staticmethod
    def _code(code: str) -> str:
        return code if code.startswith(CODE_PREFIX) else CODE_PREFIX + code

    def start(self, code: str, message: str, total: int | None) -> None:
        code = self._code(code)
        own = self.enter_context(contextlib.ExitStack())
        self._open[code] = (own.enter_context(ProgressReport(message=message, code=code, total=total)), own)

    def advance(self, code: str, n: int = 1) -> None:
        code = self._code(code)
        if code not in self._open:  # the core advanced a code it never started: start it implicitly
            self.start(code, code, None)
        self._open[code][0].increase_by(n)

    def finish(self, code: str) -> None:
        _report, own = self._open.pop(self._code(code), (None, None))
        if own is not None:
            own.close()


def _opener(storage: Any, name: str) -> Callable[[], BinaryIO]:
    """Open an artifact file through its storage backend (for storages without local paths)."""
    return lambda: storage.open(name, "rb")


def build_source(
    repo_version: RepositoryVersion, name: str, source_href: str | None = None
) -> RepositorySource:
    """Collect tags, manifests and blobs of ``repo_version`` in a fixed number of queries.

    Blob files come from one ContentArtifact query (not one per blob). Raises
    :class:`ExportSourceError` for manifests without stored bytes (pitfall 19: ``data`` null on
    data migrated from old installs) and for blobs whose artifact was never downloaded
    (on_demand/streamed remotes): exporting them would publish metadata pointing at files the
    tree cannot have.
    """
    repository = repo_version.repository.cast()
    content = repo_version.content

    tags = {
        name_: digest
        for name_, digest in Tag.objects.filter(pk__in=content).values_list("name", "tagged_manifest__digest")
    }

    manifests: list[ManifestSource] = []
    no_data: list[str] = []
    for digest, media_type, data in Manifest.objects.filter(pk__in=content).values_list(
        "digest", "media_type", "data"
    ):
        if data is None:
            no_data.append(digest)
            continue
        manifests.append(ManifestSource(digest=digest, media_type=media_type, body=data.encode("utf-8")))
    if no_data:
        raise ExportSourceError(
            f"{len(no_data)} manifest(s) have no stored data (e.g. {no_data[0]}); run "
            "'pulpcore-manager container-handle-image-data' and export again"
        )

    blob_digests = dict(Blob.objects.filter(pk__in=content).values_list("pk", "digest"))
    blobs: list[BlobSource] = []
    missing: list[str] = []
    seen: set[Any] = set()
    # A subquery rather than a list of pks: one round trip however large the repository, and
    # plain values rather than model instances (thousands of blobs, only four columns needed).
    blob_cas = ContentArtifact.objects.filter(
        content__in=content, content__pulp_type=Blob.get_pulp_type()
    ).values_list("content_id", "artifact_id", "artifact__file", "artifact__size")
    storage = None  # one domain per repository version, so one storage backend
    for content_id, artifact_id, file_name, size in blob_cas:
        digest = blob_digests[content_id]
        seen.add(content_id)
        if artifact_id is None:
            missing.append(digest)
            continue
        if storage is None:
            storage = Artifact.objects.get(pk=artifact_id).file.storage
        try:
            path: str | None = storage.path(file_name)
        except NotImplementedError:  # storage without local files (S3, Azure…)
            path = None
        blobs.append(
            BlobSource(
                digest=digest,
                size=size,
                path=path,
                opener=None if path else _opener(storage, file_name),
            )
        )
    missing.extend(d for pk, d in blob_digests.items() if pk not in seen)
    if missing:
        raise ExportSourceError(
            f"{len(missing)} blob(s) of {repository.name} have no downloaded artifact "
            f"(e.g. {sorted(missing)[0]}); content synced with policy on_demand/streamed cannot "
            "be exported: sync with policy 'immediate' first"
        )

    signatures = collect_signatures(content)

    # A private distribution may serve the repository or one of its versions: either protects it.
    protected = ContainerDistribution.objects.filter(
        Q(repository=repository) | Q(repository_version__repository=repository), private=True
    ).exists()
    return RepositorySource(
        name=name,
        tags=tags,
        manifests=manifests,
        blobs=blobs,
        protected=protected,
        # get_url() in a fresh task process populates Django's whole URL resolver (~0.4 s, most
        # of a small export's task time): the viewset passes the href it already computed.
        source=source_href or f"{get_url(repository)}versions/{repo_version.number}/",
        repository=repository.name,
        signatures=signatures,
    )


def collect_signatures(content: Any) -> dict[str, list[bytes]]:
    """Manifest digest -> simple-signing signature files of the ``ManifestSignature`` content.

    pulp-container stores what it synced from a remote's ``sigstore`` (lookaside) URL or the
    registry extension API, or what a signing service made, base64-encoded. Oldest first
    (signature timestamp, then digest), so a new signature gets the next number in the tree.
    One query, values only.
    """
    found: dict[str, list[bytes]] = {}
    rows = (
        ManifestSignature.objects.filter(pk__in=content)
        .order_by("timestamp", "digest")
        .values_list("signed_manifest__digest", "digest", "data")
    )
    for manifest_digest, sig_digest, data in rows:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise ExportSourceError(
                f"signature {sig_digest} of {manifest_digest} is not valid base64"
            ) from None
        found.setdefault(manifest_digest, []).append(raw)
    return found


def after_export(
    export: MirrorExport, summary: Any, *, queued: bool, notify_resource: str | None = None
) -> None:
    """Hook run after a successful export, once its record (and its notice) are committed.

    Announces the publish (docs/messages.md) without touching the broker here: the notice is in
    the database outbox already, and the send task runs once this task has released the
    exporter's lock, so a slow or down broker never holds up this or the next export. The
    periodic ``flush_notifications`` task retries what is pending, from any worker.
    """
    if queued:
        dispatch_send(notify_resource)


def export_to_mirror(
    exporter_pk: str,
    repo_version_pk: str,
    name: str,
    source_href: str | None = None,
    notify_resource: str | None = None,
) -> None:
    """Export one repository version under registry name ``name``.

    The summary is stored once, on the MirrorExport record (in the task's ``created_resources``):
    not again as the task result or as extra progress reports.

    ``source_href`` is the version's href as the viewset computed it (None for tasks queued by an
    older API process: then it is computed here, at a cost of ~0.4 s). ``notify_resource`` is a
    resource this task holds exclusively, for the notification send task to wait on.

    The MirrorExport record is saved only once the core has finished, in one transaction with
    its summary, its exported resource and its created-resource entry: whatever stops the task
    before that (an error, ``SIGKILL`` of the worker, a power cut) leaves no record, so no record
    claims an export that did not finish. Its id is chosen up front (the primary key is a client
    side UUID, ``pulp_id``; ``pk`` is the parent link, unset until saved) because the metadata's
    provenance names it.
    """
    exporter = MirrorExporter.objects.get(pk=exporter_pk)
    repo_version = RepositoryVersion.objects.select_related("repository").get(pk=repo_version_pk)
    source = build_source(repo_version, name, source_href)
    target = ExportTarget.from_exporter(exporter)
    params = {"repository_version": source.source, "name": name}
    export = MirrorExport(exporter=exporter, params=params, task=Task.current())  # not saved yet
    with TaskProgress() as progress:
        summary = export_repository(source, target, progress=progress, export_id=str(export.pulp_id))
    export.summary = dataclasses.asdict(summary)
    with transaction.atomic():
        export.save()
        export.exported_resources.create(content_object=repo_version)
        CreatedResource.objects.create(content_object=export)
        queued = queue_notification(export, summary)  # same transaction: both or neither
    log.info("exported %s as %s: %s", source.source, name, export.summary)
    after_export(export, summary, queued=queued, notify_resource=notify_resource)
