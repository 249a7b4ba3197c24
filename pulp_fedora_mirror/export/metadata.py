"""The per-repository crane_fedora document ("version 6", docs/layout.md §4): build, load, write.

The document changes only when the repository changes: ``published`` times are carried over from
the previous file, and the ``export`` provenance block alone never causes a rewrite. That keeps an
unchanged re-export at zero writes, and crane's settle window anchored to the first publication.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..layout import METADATA_TYPE, READABLE_VERSIONS
from .atomic import makedirs, read_if_exists, write_bytes
from .errors import ExportError

#: Directory in METADATA_DIR for the exporter's own state (prune state and log); crane skips dot-names.
STATE_DIR = ".fedora-mirror"


def dumps(doc: dict[str, Any]) -> bytes:
    """Canonical serialisation: sorted keys, so equal documents are equal bytes.

    Compact, one line: ``indent`` would force the pure-Python encoder, several times slower on a
    repository with thousands of manifests; ``jq . FILE`` reads it fine.
    """
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def is_native(doc: Any) -> bool:
    """True for documents written by this exporter, any readable version (not Pulp 2 Crane files)."""
    if not isinstance(doc, dict):
        return False
    return doc.get("type") == METADATA_TYPE and doc.get("version") in READABLE_VERSIONS


def load(path: str) -> dict[str, Any] | None:
    """The native (version 5 or 6) document at ``path``, or None if absent, unreadable or of another kind."""
    raw = read_if_exists(path)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if is_native(doc) else None


def iter_all(metadata_dir: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every native (version 5 or 6) document under ``metadata_dir`` (dot-names skipped, as crane does)."""
    for dirpath, dirnames, filenames in os.walk(metadata_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith(".") or not fn.endswith(".json"):
                continue
            path = os.path.join(dirpath, fn)
            raw = read_if_exists(path)
            if raw is None:
                continue
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                raise ExportError(f"metadata file {path} is not valid JSON ({exc})") from None
            if is_native(doc):
                yield path, doc


def iso_utc(ts: float) -> str:
    """``2026-11-29T01:40:00Z``."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_equal(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Equal apart from the ``export`` provenance block."""
    if a is None:
        return False
    return {k: v for k, v in a.items() if k != "export"} == {k: v for k, v in b.items() if k != "export"}


def write_if_changed(path: str, doc: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """Write ``doc`` atomically unless it equals ``previous`` (ignoring ``export``); True if written."""
    if content_equal(previous, doc):
        return False
    makedirs(os.path.dirname(path))
    write_bytes(path, dumps(doc))
    return True
