"""Delete tree files no metadata references, but only after a grace period.

Mirrors copy additions before deletions and are crawled at most every few hours, and crane may
still hold an older metadata file, so a file that just became unreferenced can still be fetched
(mirrors.md §7.2, §8). A file is deleted only once it has been *continuously* unreferenced for the
grace period; first-seen times live in ``METADATA_DIR/.fedora-mirror/prune-state.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..layout import BLOBS_DIR, MANIFESTS_DIR, SIGNATURES_DIR, filelist_name, parse_signature_path
from . import filelist
from .atomic import clean_temp_files, ensure_inside, makedirs, read_if_exists, write_bytes
from .errors import ExportError
from .lock import tree_lock
from .metadata import STATE_DIR, iso_utc
from .verify import references, tree_files

STATE_FILE = "prune-state.json"
LOG_FILE = "prune.log"


@dataclass
class PruneSummary:
    """What a prune did (or, with ``dry_run``, would do)."""

    referenced: int = 0
    unreferenced: int = 0
    newly_unreferenced: int = 0
    deleted: list[str] = field(default_factory=list)
    waiting: dict[str, int] = field(default_factory=dict)  # path -> seconds left
    dirs_removed: list[str] = field(default_factory=list)
    filelist_changed: bool = False
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_state(path: str) -> dict[str, float]:
    raw = read_if_exists(path)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw)
        return {str(k): float(v) for k, v in doc.get("first_unreferenced", {}).items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ExportError(f"prune state {path} is unreadable ({exc}); fix or remove it") from None


def forget_referenced(metadata_dir: str, rels: set[str]) -> int:
    """Drop ``rels`` (tree paths an export just referenced) from the prune state; return how many.

    A file's grace counts from the *last* time metadata referenced it: without this, a file
    unreferenced, referenced again and unreferenced again between two prunes kept its first
    sighting and was deleted too early. Called by an export under the tree lock; never raises
    for an unreadable state (prune reports that itself).
    """
    ensure_inside(os.path.join(metadata_dir, STATE_DIR), metadata_dir)
    state_path = os.path.join(metadata_dir, STATE_DIR, STATE_FILE)
    try:
        state = _load_state(state_path)
    except ExportError:
        return 0
    kept = {rel: first for rel, first in state.items() if rel not in rels}
    if len(kept) == len(state):
        return 0
    doc = {"first_unreferenced": dict(sorted(kept.items())), "version": 1}
    write_bytes(state_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return len(state) - len(kept)


def _deletion_order(rel: str) -> tuple[str, int]:
    """Sort key: signatures of one manifest last-number-first, so a crash never leaves a gap."""
    parsed = parse_signature_path(rel)
    if parsed is None:
        return rel, 0
    return os.path.dirname(rel), -parsed[2]


def prune(
    root: str,
    metadata_dir: str,
    grace_seconds: float,
    *,
    dry_run: bool = False,
    now: float | None = None,
    module: str | None = None,
) -> PruneSummary:
    """Delete files unreferenced for at least ``grace_seconds``; regenerate the file list."""
    now_ts = time.time() if now is None else float(now)
    root = os.path.abspath(root)
    metadata_dir = os.path.abspath(metadata_dir)
    if not os.path.isdir(root):
        raise ExportError(f"{root} is not a directory")
    if not os.path.isdir(metadata_dir):
        raise ExportError(f"metadata directory {metadata_dir} does not exist")
    if module is not None:
        try:
            filelist_name(module)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    state_dir = os.path.join(metadata_dir, STATE_DIR)
    state_path = os.path.join(state_dir, STATE_FILE)
    summary = PruneSummary(dry_run=dry_run)
    with tree_lock(root):
        try:
            for kind in (BLOBS_DIR, MANIFESTS_DIR, SIGNATURES_DIR):
                ensure_inside(os.path.join(root, kind), root)
            ensure_inside(state_dir, metadata_dir)
        except OSError as exc:
            raise ExportError(str(exc)) from None
        # Read the references with the lock held: an export in progress publishes metadata last,
        # so files it just created are referenced by the time we can take the lock.
        all_refs = references(metadata_dir)
        refs = all_refs.sizes
        summary.referenced = len(refs)
        state = _load_state(state_path)
        files = [rel for rel in tree_files(root) if not os.path.basename(rel).startswith(".")]
        # A signature goes only with its manifest: while repository <name> exports the manifest,
        # every file of signatures/<name>@sha256=<hex>/ stays, listed in the metadata or not.
        unref = sorted(
            (rel for rel in files if rel not in refs and os.path.dirname(rel) not in all_refs.signature_dirs),
            key=_deletion_order,
        )
        summary.unreferenced = len(unref)
        new_state: dict[str, float] = {}
        to_delete: list[str] = []
        for rel in unref:
            first = state.get(rel)
            if first is None:
                first = now_ts
                summary.newly_unreferenced += 1
            new_state[rel] = first
            if now_ts - first >= grace_seconds:
                to_delete.append(rel)
            else:
                summary.waiting[rel] = int(grace_seconds - (now_ts - first) + 0.999)
        if dry_run:
            summary.deleted = to_delete
            return summary
        makedirs(state_dir)
        log_path = os.path.join(state_dir, LOG_FILE)
        for rel in to_delete:
            full = os.path.join(root, rel)
            size = os.lstat(full).st_size
            os.unlink(full)
            since = new_state.pop(rel)  # also set for a file first seen unreferenced in this run
            summary.deleted.append(rel)
            entry = {
                "time": iso_utc(now_ts),
                "path": rel,
                "size": size,
                "unreferenced_since": iso_utc(since),
            }
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        if new_state != state:
            doc = {"first_unreferenced": dict(sorted(new_state.items())), "version": 1}
            write_bytes(state_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        sig_top = os.path.join(root, SIGNATURES_DIR)
        for rel in to_delete:
            d = os.path.dirname(os.path.join(root, rel))
            with contextlib.suppress(OSError):  # not empty: other files still there
                os.rmdir(d)
                summary.dirs_removed.append(os.path.relpath(d, root))
                # signatures/<ns>/<name>@sha256=…: the name's own directories go when empty too
                d = os.path.dirname(d)
                while d.startswith(sig_top + "/"):
                    os.rmdir(d)
                    summary.dirs_removed.append(os.path.relpath(d, root))
                    d = os.path.dirname(d)
        clean_temp_files(root)
        summary.filelist_changed = filelist.write_if_changed(root, module)
    return summary
