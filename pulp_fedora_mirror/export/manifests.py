"""Parse manifest bodies into what the export needs: referenced blobs, or child manifests.

Only the four schema 2 / OCI media types are exported. Schema 1 is recognised so it can be skipped
with a warning rather than failing a whole repository (Pulp repositories synced long ago still
hold some).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import mediatypes
from ..layout import InvalidDigest, digest_hex
from .errors import ExportError
from .imagefacts import manifest_facts
from .source import ManifestSource

#: Descriptor keys copied into a list/index's ``manifests`` entries in the metadata (layout.md §4).
CHILD_KEYS = ("digest", "mediaType", "size", "platform", "annotations")


@dataclass(frozen=True)
class BlobRef:
    """A blob a manifest references; ``required`` is False for foreign/non-distributable layers."""

    digest: str
    media_type: str
    size: int
    required: bool


@dataclass
class ParsedManifest:
    """A manifest body and what it points at."""

    digest: str
    media_type: str
    body: bytes
    #: "image", "list" or "schema1"
    kind: str
    blobs: list[BlobRef] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    #: a file with the same bytes that may be hard-linked instead of written (see ManifestSource)
    path: str | None = None
    #: version-6 keys taken from the body: annotations, subject, artifactType (imagefacts.py)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.body)


def is_optional_layer(media_type: str) -> bool:
    """Foreign (Windows base layers) and non-distributable layers may be absent from the source."""
    mt = media_type.lower()
    return "foreign" in mt or "nondistributable" in mt


def check_digest(digest: str, what: str) -> str:
    """Validate a sha256 digest, naming ``what`` in the error."""
    try:
        digest_hex(digest)
    except InvalidDigest:
        msg = f"{what}: unsupported or invalid digest {digest!r} (only sha256 is exported)"
        raise ExportError(msg) from None
    return digest


def _descriptor(d: Any, where: str) -> tuple[str, str, int]:
    if not isinstance(d, dict):
        raise ExportError(f"{where}: descriptor is not an object")
    digest = d.get("digest")
    size = d.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ExportError(f"{where}: descriptor lacks a valid digest or size")
    check_digest(digest, where)
    media_type = d.get("mediaType", "")
    return digest, media_type if isinstance(media_type, str) else "", size


def parse_manifest(m: ManifestSource) -> ParsedManifest:
    """Check ``m``'s digest against its body and parse it; raise :class:`ExportError` if unusable."""
    check_digest(m.digest, "manifest")
    actual = "sha256:" + hashlib.sha256(m.body).hexdigest()
    if actual != m.digest:
        raise ExportError(f"manifest {m.digest}: body has digest {actual} (corrupt source)")
    try:
        doc = json.loads(m.body)
        m.body.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"manifest {m.digest}: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ExportError(f"manifest {m.digest}: not a JSON object")
    media_type = m.media_type or doc.get("mediaType") or ""
    if not media_type:
        if doc.get("schemaVersion") == 1:
            media_type = mediatypes.DOCKER_SCHEMA1
        elif "manifests" in doc:
            media_type = mediatypes.OCI_INDEX
        elif "config" in doc:
            media_type = mediatypes.OCI_MANIFEST
    if media_type in mediatypes.SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        return ParsedManifest(m.digest, media_type or mediatypes.DOCKER_SCHEMA1, m.body, "schema1")
    where = f"manifest {m.digest}"
    if media_type in mediatypes.IMAGE_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ExportError(f"{where}: image manifest without a layers list")
        refs = []
        for i, d in enumerate([doc.get("config"), *layers]):
            digest, mt, size = _descriptor(d, f"{where} {'config' if i == 0 else f'layer {i - 1}'}")
            refs.append(BlobRef(digest, mt, size, required=i == 0 or not is_optional_layer(mt)))
        return ParsedManifest(
            m.digest, media_type, m.body, "image", blobs=refs, path=m.path, facts=manifest_facts(doc)
        )
    if media_type in mediatypes.LIST_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ExportError(f"{where}: index without a manifests list")
        children = []
        for i, d in enumerate(entries):
            _descriptor(d, f"{where} entry {i}")
            children.append({k: d[k] for k in CHILD_KEYS if k in d})
        return ParsedManifest(
            m.digest, media_type, m.body, "list", children=children, path=m.path, facts=manifest_facts(doc)
        )
    raise ExportError(f"{where}: unsupported media type {media_type!r}")
