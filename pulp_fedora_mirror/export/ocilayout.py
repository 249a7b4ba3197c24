"""Read an OCI image layout directory (``skopeo copy … oci:DIR``, ``buildah push``, ``umoci``).

The result is a :class:`RepositorySource` whose blobs are the layout's own files, so the exporter
can hard-link them. Tags come from the top-level ``index.json`` annotations.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .. import layout, mediatypes
from .errors import ExportError
from .manifests import is_optional_layer
from .source import BlobSource, ManifestSource, RepositorySource

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class LayoutError(ExportError):
    """The directory is not a usable OCI image layout."""


def _tag_from_ref(ref: str) -> str | None:
    """A tag from a ref annotation: a bare tag, or the ``:tag`` of ``host/name:tag``."""
    if layout.is_valid_tag(ref):
        return ref
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.rsplit(":", 1)[1]
        if layout.is_valid_tag(tag):
            return tag
    return None


def tag_of(descriptor: dict[str, Any], ref_tag: str | None = None) -> str | None:
    """The tag an ``index.json`` entry carries, if any.

    ``ref_tag`` is used for a ref name that is no registry tag (a Flatpak bundle names its
    manifest ``app/ID/ARCH/BRANCH``); without it such a layout is refused.
    """
    ann = descriptor.get("annotations") or {}
    ref = ann.get(REF_NAME)
    if isinstance(ref, str) and ref:
        tag = _tag_from_ref(ref)
        if tag is None:
            if ref_tag is not None:
                return ref_tag
            raise LayoutError(
                f"index.json: {REF_NAME} {ref!r} is not a valid tag (give a tag for it, e.g. --tag latest)"
            )
        return tag
    name = ann.get(CONTAINERD_NAME)
    if isinstance(name, str):
        last = name.split("@", 1)[0].rsplit("/", 1)[-1]
        if ":" in last:
            return _tag_from_ref(name)
    return None


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.manifests: dict[str, ManifestSource] = {}
        self.blobs: dict[str, BlobSource] = {}

    def blob_file(self, digest: str) -> str:
        try:
            algo, hexpart = digest.split(":", 1)
        except ValueError:
            raise LayoutError(f"invalid digest {digest!r} in {self.path}") from None
        if algo != "sha256" or not layout.DIGEST_RE.match(digest):
            raise LayoutError(f"unsupported or invalid digest {digest!r} in {self.path} (only sha256)")
        return os.path.join(self.path, "blobs", algo, hexpart)

    def read_json(self, path: str, what: str) -> tuple[bytes, Any]:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise LayoutError(f"{what} is missing: {path}") from None
        try:
            return raw, json.loads(raw)
        except ValueError as exc:
            raise LayoutError(f"{what} at {path} is not valid JSON ({exc})") from None

    def manifest(self, desc: dict[str, Any], where: str) -> None:
        digest = desc.get("digest")
        if not isinstance(digest, str):
            raise LayoutError(f"{where}: descriptor without a digest")
        if digest in self.manifests:
            return
        raw, doc = self.read_json(self.blob_file(digest), f"manifest {digest}")
        if not isinstance(doc, dict):
            raise LayoutError(f"manifest {digest} is not a JSON object")
        media_type = desc.get("mediaType") or doc.get("mediaType") or ""
        if not media_type:
            media_type = mediatypes.OCI_INDEX if "manifests" in doc else mediatypes.OCI_MANIFEST
        self.manifests[digest] = ManifestSource(
            digest=digest, media_type=media_type, body=raw, path=self.blob_file(digest)
        )
        if media_type in mediatypes.LIST_TYPES:
            for i, child in enumerate(doc.get("manifests") or []):
                self.manifest(child, f"index {digest} entry {i}")
        elif media_type in mediatypes.IMAGE_TYPES:
            for d in [doc.get("config") or {}, *(doc.get("layers") or [])]:
                self.blob(d, digest)

    def blob(self, desc: dict[str, Any], manifest: str) -> None:
        digest = desc.get("digest")
        if not isinstance(digest, str):
            raise LayoutError(f"manifest {manifest}: descriptor without a digest")
        path = self.blob_file(digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            if is_optional_layer(str(desc.get("mediaType", ""))):
                return
            msg = f"blob {digest} (referenced by manifest {manifest}) is missing: {path}"
            raise LayoutError(msg) from None
        self.blobs[digest] = BlobSource(digest=digest, size=size, path=path)


def read_oci_layout(
    path: str, name: str, *, protected: bool = False, repository: str = "", ref_tag: str | None = None
) -> RepositorySource:
    """The layout at ``path`` as repository ``name``; raise :class:`LayoutError` when unusable.

    ``ref_tag``: the tag of entries whose ref name is not a tag (see :func:`tag_of`).
    """
    if ref_tag is not None and not layout.is_valid_tag(ref_tag):
        raise LayoutError(f"invalid tag {ref_tag!r}")
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise LayoutError(f"{path} is not a directory")
    if not os.path.exists(os.path.join(path, "oci-layout")):
        raise LayoutError(f"{path} is not an OCI image layout (no oci-layout file)")
    r = _Reader(path)
    _, marker = r.read_json(os.path.join(path, "oci-layout"), "oci-layout")
    if not isinstance(marker, dict) or "imageLayoutVersion" not in marker:
        raise LayoutError(f"{path}/oci-layout lacks imageLayoutVersion")
    _, index = r.read_json(os.path.join(path, "index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise LayoutError(f"{path}/index.json has no manifests list")
    tags: dict[str, str] = {}
    for i, desc in enumerate(index["manifests"]):
        if not isinstance(desc, dict):
            raise LayoutError(f"index.json entry {i} is not an object")
        r.manifest(desc, f"index.json entry {i}")
        tag = tag_of(desc, ref_tag)
        if tag is not None:
            if tag in tags and tags[tag] != desc["digest"]:
                raise LayoutError(f"index.json: tag {tag} points at two manifests")
            tags[tag] = desc["digest"]
    return RepositorySource(
        name=name,
        tags=tags,
        manifests=list(r.manifests.values()),
        blobs=list(r.blobs.values()),
        protected=protected,
        source=path,
        repository=repository or path,
    )
