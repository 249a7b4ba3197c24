"""Immutable per-repository snapshots built once at load time.

Why precomputed objects: a request does dict look-ups only (no JSON parsing, no list scans), and
a reload swaps whole objects, so a running request keeps the snapshot it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pulp_fedora_mirror.layout import url_problem

NATIVE = "native"
PULP2 = "pulp2"


_EMPTY: MappingProxyType = MappingProxyType({})


class Manifest:
    """One stored manifest: exact body bytes plus the headers a response needs.

    The version-6 facts (docs/layout.md §4.1) are attributes with empty defaults, so a manifest read
    from a version-5 file simply has no platform, labels, signatures or subject.
    """

    __slots__ = (
        "annotations",
        "artifact_type",
        "blobs",
        "body",
        "children",
        "created",
        "default_child",
        "digest",
        "etag",
        "labels",
        "length",
        "media_type",
        "platform",
        "signatures",
        "subject",
    )

    def __init__(self, digest: str, media_type: str, body: bytes, children: tuple = ()) -> None:
        self.digest = digest
        self.media_type = media_type
        self.body = body
        self.length = str(len(body))
        self.etag = f'"{digest}"'
        #: list/index entries as (digest, mediaType, platform dict or None)
        self.children = children
        #: the child for the configured default platform, filled by the parser (lists only)
        self.default_child: Manifest | None = None
        #: images: config digest first, then layers (from the metadata's ``blobs``)
        self.blobs: tuple[str, ...] = ()
        #: version 6: image config os/architecture/variant, or None
        self.platform: MappingProxyType | None = None
        #: version 6: image config ``config.Labels`` and the body's ``annotations``
        self.labels: MappingProxyType = _EMPTY
        self.annotations: MappingProxyType = _EMPTY
        #: version 6: the image config's ``created`` (RFC 3339), or None
        self.created: str | None = None
        #: version 6: simple-signing signature files in lookaside order (index 1 first)
        self.signatures: tuple[bytes, ...] = ()
        #: version 6, OCI 1.1: the ``subject`` descriptor (digest, mediaType, size) and artifactType
        self.subject: MappingProxyType | None = None
        self.artifact_type: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class NativeRepo:
    """A ``fedora-mirror`` version 5 or 6 repository."""

    name: str
    path: str
    protected: bool
    master: str
    mirror: str | None
    tags: MappingProxyType  # tag -> Manifest
    manifests: MappingProxyType  # digest -> Manifest
    blobs: MappingProxyType  # digest -> (size, published)
    sorted_tags: tuple[str, ...]
    kind: str = NATIVE
    #: OCI 1.1 referrers: subject digest -> descriptors (dicts) of the manifests naming it, by digest
    referrers: MappingProxyType = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, eq=False)
class Pulp2Repo:
    """A Pulp 2 Crane repository (versions 2-4): everything is redirected to ``url``."""

    name: str
    path: str
    protected: bool
    version: int
    url: str
    repository: str
    schema2_data: frozenset[str]
    manifest_list_data: frozenset[str]
    amd64_tags: MappingProxyType  # tag -> (digest, 1 or 2)
    kind: str = PULP2


Repo = NativeRepo | Pulp2Repo


class MetadataError(ValueError):
    """A file that cannot be served; the message names what is wrong."""


def require(cond: Any, message: str) -> None:
    """Raise :class:`MetadataError` unless ``cond``: keeps validation code flat and readable."""
    if not cond:
        raise MetadataError(message)


__all__ = [
    "NATIVE",
    "PULP2",
    "Manifest",
    "MetadataError",
    "NativeRepo",
    "Pulp2Repo",
    "Repo",
    "require",
    "url_problem",
]
