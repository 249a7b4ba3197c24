"""What an index, a referrers API and a browser need to know of a manifest, without a blob read.

docs/layout.md §4.1 (metadata version 6): per image manifest the exporter records the image
config's platform, ``config.Labels`` and ``created``, and per manifest the body's
``annotations``, ``artifactType`` and ``subject``. crane_fedora then answers the Flatpak index
(which filters on labels and platform) and the referrers API from the metadata alone.

Pure functions over bytes and parsed JSON: the export core calls them for both sources (an OCI
layout and Pulp, whose config blobs are artifacts like any other blob). Every key is omitted when
empty, so a repository without labels or annotations keeps byte-identical metadata.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import ExportError

#: Config media types that describe a runnable image (os/architecture/Labels). Anything else under
#: ``config`` is an OCI 1.1 artifact, whose config says nothing about a platform.
IMAGE_CONFIG_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
#: A config blob larger than this is not read (labels are small; a huge "config" is an artifact).
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _string_map(value: Any) -> dict[str, str]:
    """The string → string pairs of ``value`` (labels and annotations are that by spec)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _subject(doc: dict[str, Any]) -> dict[str, Any] | None:
    subject = doc.get("subject")
    if not isinstance(subject, dict):
        return None
    digest, media_type, size = subject.get("digest"), subject.get("mediaType"), subject.get("size")
    if not isinstance(digest, str) or not isinstance(media_type, str) or type(size) is not int:
        return None
    return {"digest": digest, "mediaType": media_type, "size": size}


def manifest_facts(doc: dict[str, Any]) -> dict[str, Any]:
    """``annotations``, ``subject`` and ``artifactType`` of any manifest body (image or list).

    ``artifactType`` follows the OCI 1.1 referrers rule: the body's own ``artifactType``, else,
    for an image manifest with a ``subject``, its ``config.mediaType``.
    """
    facts: dict[str, Any] = {}
    annotations = _string_map(doc.get("annotations"))
    if annotations:
        facts["annotations"] = annotations
    subject = _subject(doc)
    if subject is not None:
        facts["subject"] = subject
    artifact_type = doc.get("artifactType")
    if not (isinstance(artifact_type, str) and artifact_type) and subject is not None:
        config = doc.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(artifact_type, str) and artifact_type:
        facts["artifactType"] = artifact_type
    return facts


def config_facts(config_media_type: str, raw: bytes) -> dict[str, Any]:
    """``platform``, ``labels`` and ``created`` from an image config blob's bytes.

    Empty for artifacts (another config media type) and for configs that are not JSON objects:
    those are legal registry content, they just have no platform.
    """
    if config_media_type not in IMAGE_CONFIG_TYPES:
        return {}
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(config, dict):
        return {}
    facts: dict[str, Any] = {}
    os_, arch = config.get("os"), config.get("architecture")
    if isinstance(os_, str) and os_ and isinstance(arch, str) and arch:
        platform = {"os": os_, "architecture": arch}
        variant = config.get("variant")
        if isinstance(variant, str) and variant:
            platform["variant"] = variant
        facts["platform"] = platform
    inner = config.get("config")
    labels = _string_map(inner.get("Labels")) if isinstance(inner, dict) else {}
    if labels:
        facts["labels"] = labels
    created = config.get("created")
    if isinstance(created, str) and created:
        facts["created"] = created
    return facts


def check_config_bytes(digest: str, raw: bytes) -> bytes:
    """``raw`` if its sha256 is ``digest``; the facts must come from the blob the tree serves."""
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != digest:
        raise ExportError(f"config blob {digest}: source bytes have digest {actual} (corrupt source)")
    return raw


__all__ = ["IMAGE_CONFIG_TYPES", "MAX_CONFIG_BYTES", "check_config_bytes", "config_facts", "manifest_facts"]
