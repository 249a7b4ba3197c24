"""What the export core is given: one repository's tags, manifests and blobs.

The Pulp task builds these from a repository version; ``fedora-mirror export`` builds them from
an OCI image layout. Keeping the input this small is what lets the core run without Django.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol


@dataclass(frozen=True)
class BlobSource:
    """A blob and how to get its bytes.

    ``path`` is a local file that may be hard-linked into the tree (Pulp's FileSystem storage,
    an OCI layout); ``opener`` is used when there is no such file (other storage backends).
    At least one must be given.
    """

    digest: str
    size: int
    path: str | None = None
    opener: Callable[[], BinaryIO] | None = None


@dataclass(frozen=True)
class ManifestSource:
    """A manifest exactly as stored (``body`` are the bytes whose sha256 is ``digest``).

    ``path`` is a file holding the same bytes (an OCI layout's blob) that may be hard-linked into
    the tree instead of writing a new file; Pulp keeps manifests in the database and leaves it None.
    """

    digest: str
    media_type: str
    body: bytes
    path: str | None = None


@dataclass(frozen=True)
class RepositorySource:
    """One registry repository to export."""

    name: str
    tags: Mapping[str, str]
    manifests: Sequence[ManifestSource]
    blobs: Sequence[BlobSource]
    protected: bool = False
    #: Where it came from (a Pulp repository version href, an OCI layout path); informational.
    source: str = ""
    #: Pulp repository name or similar; goes to the metadata's ``repository`` key.
    repository: str = ""
    #: Simple-signing signature files by manifest digest (source order); those of digests that are
    #: not exported manifests are ignored (counted in ``ExportSummary.signatures_unmatched``).
    signatures: Mapping[str, Sequence[bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportTarget:
    """Where and how to export."""

    root: str
    metadata_dir: str
    master_url: str
    mirror_url: str | None = None
    #: Name of the MirrorManager module; the file list is ``fullfiletimelist-<module>``.
    module: str | None = None
    #: Allow ``protected`` repositories into the (mirrored) tree; off by default (mirrors.md §7.8).
    allow_protected: bool = False
    #: Hard-link blobs from ``BlobSource.path`` when possible; False forces stream copies.
    hardlink: bool = True

    @classmethod
    def from_exporter(cls, exporter: Any, *, hardlink: bool = True) -> ExportTarget:
        """The target an exporter's settings describe, from anything with a ``MirrorExporter``'s
        attribute names (``path``, ``metadata_path``, ``master_url``, ``mirror_url``, ``module``,
        ``allow_protected``): the Pulp model in the task, the parsed arguments in the CLI. One
        mapping, so a new exporter setting reaches both."""
        return cls(
            root=exporter.path,
            metadata_dir=exporter.metadata_path,
            master_url=exporter.master_url,
            mirror_url=exporter.mirror_url,
            module=exporter.module,
            allow_protected=exporter.allow_protected,
            hardlink=hardlink,
        )


class Progress(Protocol):
    """Progress sink. The Pulp task maps it to ProgressReports, the CLI to a bar or lines."""

    def start(self, code: str, message: str, total: int | None) -> None: ...

    def advance(self, code: str, n: int = 1) -> None: ...

    def finish(self, code: str) -> None: ...


@dataclass
class ExportSummary:
    """What an export did; stored on the Pulp export record and printed by the CLI."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    manifests: int = 0
    manifests_written: int = 0
    blobs: int = 0
    blobs_linked: int = 0
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_written: int = 0
    skipped_schema1: list[str] = field(default_factory=list)
    metadata_path: str = ""
    metadata_changed: bool = False
    filelist_changed: bool = False
    seconds: float = 0.0
    #: Files this export created or replaced in ROOT and METADATA_DIR (0 for an unchanged re-export).
    files_written: int = 0
    #: Tags left out because they point at Docker schema 1 manifests.
    skipped_tags: list[str] = field(default_factory=list)
    #: Tree files whose size did not match their digest and were replaced.
    replaced: list[str] = field(default_factory=list)
    #: Foreign/non-distributable layers listed in manifests but absent from the source.
    optional_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Signature files published for the exported manifests (all of them, old and new).
    signatures: int = 0
    #: Signature files this export created or replaced in ROOT/signatures.
    signatures_written: int = 0
    #: Signatures in the source whose digest is not an exported manifest (left out).
    signatures_unmatched: int = 0
