"""Parse and verify a native ``fedora-mirror`` version 5 or 6 file (``docs/layout.md`` §4)."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import sys
from collections.abc import Callable
from types import MappingProxyType

from crane_fedora.config import Config
from crane_fedora.metadata.model import Manifest, MetadataError, NativeRepo, require, url_problem
from pulp_fedora_mirror.layout import DIGEST_RE, is_valid_name, is_valid_tag
from pulp_fedora_mirror.mediatypes import LIST_TYPES, SUPPORTED_TYPES

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=65536)
def _tag_ok(tag: str) -> bool:
    """Tag names repeat across repositories ("latest", "40"): check each distinct one once."""
    return is_valid_tag(tag)


def _check_url(value: object, key: str, config: Config) -> str:
    require(isinstance(value, str), f"{key} must be a string")
    assert isinstance(value, str)
    require(
        value.startswith(("https://", "http://")) and value.endswith("/"),
        f"{key} must be an absolute http(s) URL ending in '/': {value!r}",
    )
    problem = url_problem(value)
    require(problem is None, f"{key} {problem}: {value!r}")
    if config.allowed_url_prefixes:
        require(
            value.startswith(config.allowed_url_prefixes),
            f"{key} {value!r} is not under [mirrors] allowed_url_prefixes",
        )
    return value


_V5_KEYS = frozenset(("mediaType", "size", "body", "manifests", "blobs"))


def _string_map(value: object, what: str) -> MappingProxyType:
    require(
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
        f"{what} must map strings to strings",
    )
    assert isinstance(value, dict)
    return MappingProxyType(value)


def _signatures(value: object, digest: str) -> tuple[bytes, ...]:
    """Signature files in index order; indexes must run 1..n without gaps (the lookaside rule)."""
    require(isinstance(value, list), f"manifest {digest}: signatures must be a list")
    assert isinstance(value, list)
    out = []
    for n, sig in enumerate(value, 1):
        require(
            isinstance(sig, dict) and sig.get("index") == n and isinstance(sig.get("content"), str),
            f"manifest {digest}: signature {n} must be {{'index': {n}, 'content': base64}}",
        )
        try:
            out.append(base64.b64decode(sig["content"], validate=True))
        except (binascii.Error, ValueError):
            raise MetadataError(f"manifest {digest}: signature {n} is not base64") from None
    return tuple(out)


def _descriptor(value: object, digest: str) -> MappingProxyType:
    require(
        isinstance(value, dict)
        and isinstance(value.get("digest"), str)
        and DIGEST_RE.match(value["digest"])
        and isinstance(value.get("mediaType"), str)
        and type(value.get("size")) is int,
        f"manifest {digest}: subject must be a descriptor with a sha256 digest, mediaType and size",
    )
    assert isinstance(value, dict)
    return MappingProxyType({k: value[k] for k in ("digest", "mediaType", "size")})


def _version6(m: Manifest, entry: dict) -> None:
    """Fill the optional version-6 facts (docs/layout.md §4.1); absent keys keep the defaults."""
    d = m.digest
    if "platform" in entry:
        platform = entry["platform"]
        require(
            isinstance(platform, dict)
            and isinstance(platform.get("os"), str)
            and isinstance(platform.get("architecture"), str)
            and isinstance(platform.get("variant", ""), str),
            f"manifest {d}: platform needs string os and architecture",
        )
        m.platform = MappingProxyType(platform)
    if "labels" in entry:
        m.labels = _string_map(entry["labels"], f"manifest {d}: labels")
    if "annotations" in entry:
        m.annotations = _string_map(entry["annotations"], f"manifest {d}: annotations")
    if "created" in entry:
        require(isinstance(entry["created"], str), f"manifest {d}: created must be a string")
        m.created = entry["created"]
    if "signatures" in entry:
        m.signatures = _signatures(entry["signatures"], d)
    if "subject" in entry:
        m.subject = _descriptor(entry["subject"], d)
    if "artifactType" in entry:
        require(isinstance(entry["artifactType"], str), f"manifest {d}: artifactType must be a string")
        m.artifact_type = entry["artifactType"]


def _no_pause() -> None:
    """Small files are parsed in one go (see ``parse.STEPPED_ABOVE``)."""


def _manifest(digest: str, entry: object) -> Manifest:
    require(DIGEST_RE.match(digest), f"manifest key {digest!r} is not a sha256 digest")
    require(isinstance(entry, dict), f"manifest {digest} must be an object")
    assert isinstance(entry, dict)
    media_type = entry.get("mediaType")
    require(media_type in SUPPORTED_TYPES, f"manifest {digest}: unsupported mediaType {media_type!r}")
    text = entry.get("body")
    require(isinstance(text, str), f"manifest {digest}: body must be a string")
    body = text.encode("utf-8")
    require(entry.get("size") == len(body), f"manifest {digest}: size {entry.get('size')} != {len(body)}")
    require(
        "sha256:" + hashlib.sha256(body).hexdigest() == digest, f"manifest {digest}: body digest mismatch"
    )
    children: tuple = ()
    blob_list: tuple[str, ...] = ()
    if media_type in LIST_TYPES:
        entries = entry.get("manifests")
        require(isinstance(entries, list), f"manifest {digest}: a list needs 'manifests'")
        items = []
        for child in entries:
            require(
                isinstance(child, dict) and isinstance(child.get("digest"), str),
                f"manifest {digest}: bad list entry",
            )
            items.append((sys.intern(child["digest"]), child.get("mediaType"), child.get("platform")))
        children = tuple(items)
    else:
        blobs = entry.get("blobs")
        require(
            isinstance(blobs, list) and all(isinstance(b, str) for b in blobs),
            f"manifest {digest}: an image needs 'blobs'",
        )
        blob_list = tuple(blobs)
    m = Manifest(sys.intern(digest), media_type, body, children)
    m.blobs = blob_list
    if entry.keys() - _V5_KEYS:  # a version-5 entry skips the version-6 checks entirely
        _version6(m, entry)
    return m


def _artifact_type(m: Manifest) -> str | None:
    """OCI 1.1: the manifest's ``artifactType``, else its config's ``mediaType``."""
    if m.artifact_type is not None:
        return m.artifact_type
    try:
        config = json.loads(m.body).get("config")
    except (ValueError, AttributeError):
        return None
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    return media_type if isinstance(media_type, str) else None


def _referrers(manifests: dict[str, Manifest]) -> MappingProxyType:
    """Subject digest -> referrers as ``(artifactType, descriptor JSON)``, once per snapshot.

    Why here: the referrers API must neither scan every manifest of a repository nor build
    descriptors per request; it only filters on artifactType and joins the bytes.
    """
    found: dict[str, list[tuple[str | None, bytes]]] = {}
    for digest in sorted(manifests):
        m = manifests[digest]
        if m.subject is None:
            continue
        desc: dict = {"mediaType": m.media_type, "digest": digest, "size": len(m.body)}
        artifact_type = _artifact_type(m)
        if artifact_type is not None:
            desc["artifactType"] = artifact_type
        if m.annotations:
            desc["annotations"] = dict(m.annotations)
        found.setdefault(m.subject["digest"], []).append((artifact_type, json.dumps(desc).encode()))
    if not found:
        return MappingProxyType({})
    return MappingProxyType({k: tuple(v) for k, v in found.items()})


def parse_native(doc: dict, path: str, config: Config, pause: Callable[[], None] = _no_pause) -> NativeRepo:
    """Build a :class:`NativeRepo`; any inconsistency rejects the whole file.

    ``pause`` is called once per entry of every loop: for a large file the parser passes
    ``jsonsteps.pause``, which lets request threads run in between.
    """
    name = doc.get("repo-registry-id")
    require(isinstance(name, str) and is_valid_name(name), f"invalid repo-registry-id {name!r}")
    protected = doc.get("protected", False)
    require(isinstance(protected, bool), "protected must be true or false")
    urls = doc.get("urls")
    require(isinstance(urls, dict), "urls must be an object")
    master = _check_url(urls.get("master"), "urls.master", config)
    mirror = urls.get("mirror")
    if mirror is not None:
        mirror = _check_url(mirror, "urls.mirror", config)

    raw_manifests = doc.get("manifests")
    require(isinstance(raw_manifests, dict), "manifests must be an object")
    manifests = {}
    for d, e in raw_manifests.items():
        pause()
        manifests[d] = _manifest(d, e)

    raw_blobs = doc.get("blobs")
    require(isinstance(raw_blobs, dict), "blobs must be an object")
    blobs: dict[str, tuple[int, float]] = {}
    # Hot loops (a million tags at 10,000 repositories): plain ifs, messages built only on failure.
    for digest, info in raw_blobs.items():
        pause()
        if not DIGEST_RE.match(digest):
            raise MetadataError(f"blob key {digest!r} is not a sha256 digest")
        size = info.get("size") if isinstance(info, dict) else None
        published = info.get("published") if isinstance(info, dict) else None
        if type(size) is not int or size < 0:
            raise MetadataError(f"blob {digest}: bad size")
        if type(published) not in (int, float):
            raise MetadataError(f"blob {digest}: bad published time")
        blobs[digest] = (size, published)

    raw_tags = doc.get("tags")
    require(isinstance(raw_tags, dict), "tags must be an object")
    tags: dict[str, Manifest] = {}
    intern = sys.intern
    for tag, digest in raw_tags.items():
        pause()
        target = manifests.get(digest) if type(digest) is str else None
        if target is None or not _tag_ok(tag):
            if not _tag_ok(tag):
                raise MetadataError(f"invalid tag {tag!r}")
            raise MetadataError(f"tag {tag!r} points at {digest!r}, which is not in manifests")
        tags[intern(tag)] = target

    for m in manifests.values():
        pause()
        if m.children:
            for child_digest, _mt, platform in m.children:
                child = manifests.get(child_digest)
                if child is not None and config.default_platform.matches(platform):
                    m.default_child = child
                    break

    return NativeRepo(
        referrers=_referrers(manifests),
        name=name,  # type: ignore[arg-type]
        path=path,
        protected=protected,
        master=master,
        mirror=mirror,
        tags=MappingProxyType(tags),
        manifests=MappingProxyType(manifests),
        blobs=MappingProxyType(blobs),
        sorted_tags=tuple(sorted(tags)),
    )


__all__ = ["MetadataError", "parse_native"]
