"""Where everything lives: the one place that computes tree paths and validates names.

Shared by the exporter and crane_fedora (see ``docs/layout.md``). Pure functions, no I/O, no
Django: a blob's path on the mirror is ``blob_path(digest)``, nowhere else.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

#: Metadata files written by the exporter carry these markers (Pulp 2 used versions 1-4).
#: Version 6 is version 5 plus optional keys (docs/layout.md §4.1); both are read, 6 is written.
METADATA_TYPE = "fedora-mirror"
METADATA_VERSION = 6
READABLE_VERSIONS = (5, 6)

#: Every pattern ends in ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which let
#: ``latest%0a`` through as a tag and into a redirect's ``Location`` header.
#: Only sha256 content is exported; the registry spec allows others, the tree does not.
DIGEST_RE = re.compile(r"^sha256:([a-f0-9]{64})\Z")
#: Any digest of the OCI grammar (used to tell "invalid" from "unsupported" in errors).
ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
#: Algorithms registered by the OCI image spec, with the one syntax of their encoded part. A digest
#: naming one of them is malformed unless it matches (``sha256:zz`` is invalid, not unknown).
REGISTERED_DIGESTS = {
    "sha256": re.compile(r"[a-f0-9]{64}\Z"),
    "sha512": re.compile(r"[a-f0-9]{128}\Z"),
}
#: Repository name grammar of the OCI distribution spec.
NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\Z")
NAME_MAX = 255
#: Tag grammar of the OCI distribution spec.
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")

BLOBS_DIR = "blobs"
MANIFESTS_DIR = "manifests"
#: Simple-signing lookaside store (containers/image layout, docs/layout.md §2).
SIGNATURES_DIR = "signatures"
SIGNATURE_PREFIX = "signature-"
#: ``signatures/<name>@sha256=<hex>/signature-<n>`` split into name, hex and n (n from 1, no zero padding).
SIGNATURE_PATH_RE = re.compile(r"^signatures/(.+)@sha256=([a-f0-9]{64})/signature-([1-9][0-9]{0,8})\Z")
FILELIST_PREFIX = "fullfiletimelist-"
#: Temp files are dot-files in the target directory; readers and the file list skip them.
TEMP_PREFIX = "."


class InvalidDigest(ValueError):
    """A digest that is not ``sha256:`` followed by 64 lower-case hex characters."""


def digest_hex(digest: str) -> str:
    """Return the hex part of a sha256 digest, or raise :class:`InvalidDigest`."""
    m = DIGEST_RE.match(digest)
    if not m:
        raise InvalidDigest(f"not a sha256 digest: {digest!r}")
    return m.group(1)


def _sharded(kind: str, digest: str) -> str:
    hexpart = digest_hex(digest)
    return f"{kind}/sha256/{hexpart[:2]}/{hexpart}"


def blob_path(digest: str) -> str:
    """Relative path (POSIX, no leading slash) of a blob in the mirror tree."""
    return _sharded(BLOBS_DIR, digest)


def manifest_path(digest: str) -> str:
    """Relative path (POSIX, no leading slash) of a manifest body in the mirror tree."""
    return _sharded(MANIFESTS_DIR, digest)


def signature_dir(name: str, digest: str) -> str:
    """Relative directory of one manifest's signatures under registry name ``name``.

    The containers/image lookaside layout: a client configured with ``lookaside: <URL of
    ROOT>/signatures`` fetches ``<name>@sha256=<hex>/signature-1``, ``-2``, … until a 404.
    """
    if not is_valid_name(name):
        raise ValueError(f"invalid repository name: {name!r}")
    return f"{SIGNATURES_DIR}/{name}@sha256={digest_hex(digest)}"


def signature_path(name: str, digest: str, index: int) -> str:
    """Relative path of signature number ``index`` (from 1) of ``digest`` under ``name``."""
    if type(index) is not int or index < 1:
        raise ValueError(f"invalid signature index: {index!r}")
    return f"{signature_dir(name, digest)}/{SIGNATURE_PREFIX}{index}"


def parse_signature_path(rel: str) -> tuple[str, str, int] | None:
    """``(name, digest, index)`` of a tree path made by :func:`signature_path`, else None."""
    m = SIGNATURE_PATH_RE.match(rel)
    if m is None or not is_valid_name(m.group(1)):
        return None
    return m.group(1), "sha256:" + m.group(2), int(m.group(3))


def filelist_name(module: str) -> str:
    """Name of the quick-fedora-mirror file list at the top of the tree."""
    if not module or "/" in module or module.startswith("."):
        raise ValueError(f"invalid module name: {module!r}")
    return FILELIST_PREFIX + module


def is_valid_digest(digest: str) -> bool:
    """True if ``digest`` is well formed: the OCI grammar, and the exact syntax of a registered
    algorithm (sha256, sha512). An unregistered algorithm passes if it fits the grammar: valid,
    though nothing is ever stored under it."""
    if ANY_DIGEST_RE.match(digest) is None:
        return False
    algorithm, _, encoded = digest.partition(":")
    pattern = REGISTERED_DIGESTS.get(algorithm)
    return pattern is None or pattern.match(encoded) is not None


def is_valid_name(name: str) -> bool:
    """True if ``name`` is a repository name clients may use."""
    return len(name) <= NAME_MAX and NAME_RE.match(name) is not None


def is_valid_tag(tag: str) -> bool:
    """True if ``tag`` matches the distribution spec's tag grammar."""
    return TAG_RE.match(tag) is not None


def metadata_relpath(name: str) -> str:
    """Relative path of a repository's metadata file inside the metadata directory."""
    if not is_valid_name(name):
        raise ValueError(f"invalid repository name: {name!r}")
    return str(PurePosixPath(*name.split("/"))) + ".json"


def join_url(base: str, relpath: str) -> str:
    """``base`` (ending in ``/``) + a path from this module; never leaves ``base``."""
    if not base.endswith("/"):
        base += "/"
    if relpath.startswith("/") or ".." in relpath.split("/"):
        raise ValueError(f"refusing to join {relpath!r}")
    return base + relpath


class InvalidURL(ValueError):
    """A master or mirror URL that crane_fedora could not use as a redirect base."""


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a redirect base, or None if it can.

    The one rule for the exporter (CLI and REST) and crane_fedora's parser, so that an export can
    never write metadata every crane then refuses. Why these rules: every blob redirect is this
    URL plus a validated path, sent as ``Location``. A control or non-ASCII character made the
    WSGI server refuse the header (an HTML 500), and user info (``https://dl.example.org@evil.com/``)
    names another host while looking like an allowed one.
    """
    if not url.isascii() or not url.isprintable() or " " in url:
        return "must be printable ASCII without spaces"
    if any(c in url for c in "?#\\"):
        return "must not contain a query, fragment or backslash"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not url.startswith(parts.scheme + "://"):
        return "must be an absolute http(s) URL"
    if "@" in parts.netloc:
        return "must not contain user info"
    if not parts.hostname:
        return "must name a host"
    return None


def base_url(url: str, what: str = "URL") -> str:
    """``url`` checked by :func:`url_problem` and ending in ``/``, or :class:`InvalidURL`.

    A missing trailing slash is added, not rejected: paths such as ``blobs/sha256/…`` are appended,
    so ``…/containers`` and ``…/containers/`` can only mean one thing. The message never repeats a
    URL with user info in it (it may hold a password).
    """
    problem = url_problem(url)
    if problem is not None:
        shown = "" if "@" in url else f": {url!r}"
        raise InvalidURL(f"{what} {problem}{shown}")
    return url if url.endswith("/") else url + "/"
