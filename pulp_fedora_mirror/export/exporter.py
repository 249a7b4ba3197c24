"""``export_repository``: one repository into the mirror tree and its crane_fedora metadata file.

The order is the whole point (docs/layout.md §3): lock, blobs, manifests, signatures, metadata,
file list.
A reader (crane, rsync, a mirror) can then never see a reference to a missing or partial file;
a failure before the metadata rename publishes nothing and removes what this run created.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .. import layout
from . import filelist, metadata, testpoints
from . import signatures as sigs
from .atomic import (
    clean_own_temp_files,
    clean_temp_files,
    ensure_inside,
    makedirs,
    read_if_exists,
    syncfs,
    write_temp,
)
from .blobs import place_blob
from .errors import ExportError
from .imagefacts import MAX_CONFIG_BYTES, check_config_bytes, config_facts
from .lock import tree_lock
from .manifests import ParsedManifest, check_digest, parse_manifest
from .prune import forget_referenced
from .source import BlobSource, ExportSummary, ExportTarget, Progress, RepositorySource

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything decided before touching the disk: validated, parsed, cross-checked."""

    tags: dict[str, str]
    manifests: dict[str, ParsedManifest]
    blobs: dict[str, BlobSource]
    #: digest -> size of foreign layers absent from the source (listed, not exported)
    optional_missing: dict[str, int] = field(default_factory=dict)
    skipped_schema1: list[str] = field(default_factory=list)
    skipped_tags: list[str] = field(default_factory=list)
    #: manifest digest -> the source's signature files (exported manifests only)
    signatures: dict[str, list[bytes]] = field(default_factory=dict)
    signatures_unmatched: int = 0
    master_url: str = ""
    mirror_url: str | None = None


def _url(url: str, what: str) -> str:
    """The contract's URL rule (crane_fedora applies the same one when it reads the metadata)."""
    try:
        return layout.base_url(url, what)
    except layout.InvalidURL as exc:
        raise ExportError(str(exc)) from None


def plan_export(repo: RepositorySource, target: ExportTarget) -> Plan:
    """Validate ``repo`` against the contract and work out exactly what to publish."""
    if not layout.is_valid_name(repo.name):
        raise ExportError(f"invalid repository name {repo.name!r}")
    if repo.protected and not target.allow_protected:
        raise ExportError(
            f"repository {repo.name} is protected; refusing to put it in a mirrored tree "
            "(allow_protected overrides)"
        )
    plan = Plan(tags={}, manifests={}, blobs={})
    plan.master_url = _url(target.master_url, "master URL")
    plan.mirror_url = _url(target.mirror_url, "mirror URL") if target.mirror_url else None

    schema1: set[str] = set()
    for m in repo.manifests:
        parsed = parse_manifest(m)
        if parsed.kind == "schema1":
            schema1.add(m.digest)
        else:
            plan.manifests[m.digest] = parsed
    plan.skipped_schema1 = sorted(schema1)

    for tag, digest in sorted(repo.tags.items()):
        if not layout.is_valid_tag(tag):
            raise ExportError(f"invalid tag {tag!r} in repository {repo.name}")
        check_digest(digest, f"tag {tag}")
        if digest in schema1:
            plan.skipped_tags.append(tag)
            continue
        if digest not in plan.manifests:
            raise ExportError(f"tag {tag} points at manifest {digest}, which is not in the source")
        plan.tags[tag] = digest

    source_blobs: dict[str, BlobSource] = {}
    for b in repo.blobs:
        check_digest(b.digest, "blob")
        source_blobs[b.digest] = b
    for parsed in plan.manifests.values():
        for child in parsed.children:
            d = child["digest"]
            if d not in plan.manifests and d not in schema1:
                raise ExportError(
                    f"index {parsed.digest} references manifest {d}, which is not in the source"
                )
        for ref in parsed.blobs:
            src = source_blobs.get(ref.digest)
            if src is None:
                if ref.required:
                    raise ExportError(
                        f"manifest {parsed.digest} references blob {ref.digest}, which is not in the source"
                    )
                plan.optional_missing[ref.digest] = ref.size
                continue
            if src.size != ref.size:
                raise ExportError(
                    f"blob {ref.digest}: manifest {parsed.digest} says {ref.size} bytes, "
                    f"source has {src.size}"
                )
            plan.blobs[ref.digest] = src
    for digest, files in sorted(repo.signatures.items()):
        if digest not in plan.manifests:
            plan.signatures_unmatched += len(files)
            continue
        unique: list[bytes] = []
        for n, data in enumerate(files, 1):
            sigs.check_signature(data, f"signature {n} of manifest {digest}")
            if data not in unique:
                unique.append(data)
        plan.signatures[digest] = unique
    return plan


class _Progress:
    """Null-safe wrapper so the export code does not test for ``None`` everywhere."""

    def __init__(self, sink: Progress | None) -> None:
        self.sink = sink

    def start(self, code: str, message: str, total: int | None) -> None:
        if self.sink:
            self.sink.start(code, message, total)

    def advance(self, code: str) -> None:
        if self.sink:
            self.sink.advance(code, 1)

    def finish(self, code: str) -> None:
        if self.sink:
            self.sink.finish(code)


class _Run:
    """What this run created, so a failure before the metadata rename can undo it."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.dirs: list[str] = []

    def rollback(self) -> None:
        for path in reversed(self.files):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # pragma: no cover - best effort, the error being raised matters more
                log.warning("could not remove %s after a failed export: %s", path, exc)
        for path in reversed(self.dirs):
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty: another repository's files live there


def _ensure_dir_inside(path: str, top: str, created: list[str], *, durable: bool = False) -> None:
    """``makedirs(path)``, then refuse if a symlink below ``top`` leads it elsewhere.

    ``top`` itself may be a symlink (``/srv/pub -> /mnt/pub``); a symlinked ``blobs/``, shard or
    metadata subdirectory would make every later write land outside the tree.
    """
    makedirs(path, created, durable=durable)
    try:
        ensure_inside(path, top)
    except OSError as exc:
        raise ExportError(str(exc)) from None


def _existing_size(path: str) -> int | None:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return None


def _publish_blobs(
    plan: Plan, root: str, target: ExportTarget, run: _Run, summary: ExportSummary, progress: _Progress
) -> set[str]:
    """Step 2. Returns the digests whose files were already in the tree before this run."""
    preexisting: set[str] = set()
    shards: set[str] = set()  # shard directories known to exist (saves a stat per blob)
    progress.start("blobs", "Exporting blobs", len(plan.blobs))
    for digest in sorted(plan.blobs):
        src = plan.blobs[digest]
        rel = layout.blob_path(digest)
        dest = os.path.join(root, rel)
        size = _existing_size(dest)
        if size == src.size:
            preexisting.add(digest)
            summary.blobs_present += 1
            progress.advance("blobs")
            continue
        shard = os.path.dirname(dest)
        if shard not in shards:
            _ensure_dir_inside(shard, root, run.dirs)
            shards.add(shard)
        how = place_blob(src, dest, hardlink=target.hardlink, replacing=size is not None)
        if size is None:
            run.files.append(dest)
        else:
            summary.replaced.append(rel)
            log.warning("replaced %s: %d bytes on disk, digest says %d", rel, size, src.size)
        summary.files_written += 1
        summary.bytes_written += src.size if how == "copied" else 0
        if how == "linked":
            summary.blobs_linked += 1
        else:
            summary.blobs_copied += 1
        testpoints.reached(f"blob {digest}")
        progress.advance("blobs")
    if summary.files_written:
        syncfs(root)  # new directory entries (and copies) durable before anything refers to them
    progress.finish("blobs")
    return preexisting


def _count_manifest(digest: str, dest: str, new: bool, size: int, run: _Run, summary: ExportSummary) -> None:
    """Record one manifest file placed in the tree (for rollback and the summary)."""
    if new:
        run.files.append(dest)
    else:
        summary.replaced.append(layout.manifest_path(digest))
    summary.manifests_written += 1
    summary.files_written += 1
    summary.bytes_written += size


def _publish_manifests(
    plan: Plan, root: str, target: ExportTarget, run: _Run, summary: ExportSummary, progress: _Progress
) -> None:
    """Step 3: manifest bodies, byte-exact, from memory (their digests were checked when parsed).

    All temp files first, one ``syncfs``, then the renames and one more ``syncfs``: the same
    guarantee as fsync-per-file (no partial file under a real name) for two flushes in total.
    """
    pending: list[tuple[str, str, str, bool]] = []  # digest, temp, dest, new
    progress.start("manifests", "Exporting manifests", len(plan.manifests))
    try:
        for digest in sorted(plan.manifests):
            m = plan.manifests[digest]
            dest = os.path.join(root, layout.manifest_path(digest))
            size = _existing_size(dest)
            if size == m.size:
                progress.advance("manifests")
                continue
            _ensure_dir_inside(os.path.dirname(dest), root, run.dirs)
            if m.path and target.hardlink:
                # Same bytes on disk (an OCI layout): link like a blob, hash-checked, no new data.
                place_blob(
                    BlobSource(digest, m.size, path=m.path),
                    dest,
                    hardlink=True,
                    kind="manifest",
                    replacing=size is not None,
                )
                _count_manifest(digest, dest, size is None, m.size, run, summary)
                testpoints.reached(f"manifest {digest}")
                progress.advance("manifests")
                continue
            pending.append((digest, write_temp(dest, m.body, fsync=False), dest, size is None))
        if pending:
            syncfs(root)
        while pending:
            digest, tmp, dest, new = pending.pop(0)
            os.rename(tmp, dest)
            _count_manifest(digest, dest, new, plan.manifests[digest].size, run, summary)
            testpoints.reached(f"manifest {digest}")
            progress.advance("manifests")
        if summary.manifests_written:
            syncfs(root)
    finally:
        for _digest, tmp, _dest, _new in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    progress.finish("manifests")


def _config_facts(m: ParsedManifest, plan: Plan) -> dict[str, Any]:
    """Platform, labels and created of an image manifest, from its config blob's source bytes."""
    config = m.blobs[0]
    src = plan.blobs.get(config.digest)
    if src is None or src.size > MAX_CONFIG_BYTES:
        return {}
    if src.path is not None:
        with open(src.path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    else:
        assert src.opener is not None
        with src.opener() as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    return config_facts(config.media_type, check_config_bytes(config.digest, raw))


def _publish_signatures(
    plan: Plan,
    name: str,
    root: str,
    previous: dict[str, Any] | None,
    run: _Run,
    summary: ExportSummary,
    progress: _Progress,
) -> dict[str, list[bytes]]:
    """Step 4: the lookaside store, before the metadata that lists it; returns digest -> files.

    Every exported manifest keeps the signatures published before (metadata first, then the tree's
    files) under their numbers; new ones get the next numbers. Temp files first, one ``syncfs``,
    renames in number order (a client never meets a gap), one more ``syncfs``. A file already in
    the tree with the right bytes is not touched, so an unchanged re-export writes nothing.
    """
    result: dict[str, list[bytes]] = {}
    pending: list[tuple[str, str, bool]] = []  # temp, dest, new
    progress.start("signatures", "Exporting signatures", None)
    # One listing instead of a stat per manifest: most manifests of a repository are unsigned.
    parent = os.path.dirname(os.path.join(root, layout.signature_dir(name, "sha256:" + "0" * 64)))
    try:
        in_tree = set(os.listdir(parent))
    except (FileNotFoundError, NotADirectoryError):
        in_tree = set()
    try:
        for digest in sorted(plan.manifests):
            sig_dir = os.path.join(root, layout.signature_dir(name, digest))
            published = sigs.previous_signatures(previous, digest)
            on_disk: list[bytes] = []
            if os.path.basename(sig_dir) in in_tree:
                try:
                    ensure_inside(sig_dir, root)
                except OSError as exc:
                    raise ExportError(str(exc)) from None
                on_disk = sigs.on_disk_signatures(root, name, digest)
            files = sigs.merge(published, on_disk, plan.signatures.get(digest, ()))
            if not files:
                continue
            result[digest] = files
            for n, data in enumerate(files, 1):
                if n <= len(on_disk) and on_disk[n - 1] == data:
                    continue
                _ensure_dir_inside(sig_dir, root, run.dirs)
                dest = os.path.join(sig_dir, f"{layout.SIGNATURE_PREFIX}{n}")
                pending.append((write_temp(dest, data, fsync=False), dest, n > len(on_disk)))
        if pending:
            syncfs(root)
        while pending:
            tmp, dest, new = pending.pop(0)
            os.rename(tmp, dest)
            if new:
                run.files.append(dest)
            else:
                rel = os.path.relpath(dest, root)
                summary.replaced.append(rel)
                log.warning("replaced %s: its bytes differ from the published signature", rel)
            summary.signatures_written += 1
            summary.files_written += 1
            summary.bytes_written += os.lstat(dest).st_size
            testpoints.reached(f"signature {os.path.relpath(dest, root)}")
            progress.advance("signatures")
        if summary.signatures_written:
            syncfs(root)
    finally:
        for tmp, _dest, _new in pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    summary.signatures = sum(len(f) for f in result.values())
    progress.finish("signatures")
    return result


def build_metadata(
    repo: RepositorySource,
    plan: Plan,
    root: str,
    previous: dict[str, Any] | None,
    preexisting: set[str],
    now: float,
    export_id: str | None,
    signatures: dict[str, list[bytes]] | None = None,
) -> dict[str, Any]:
    """The version-6 document of docs/layout.md §4."""
    prev_blobs = (previous or {}).get("blobs") or {}
    blobs: dict[str, Any] = {}
    for digest, src in plan.blobs.items():
        prev = prev_blobs.get(digest)
        if isinstance(prev, dict) and isinstance(prev.get("published"), int):
            published = prev["published"]
        elif digest in preexisting:
            # In the tree already (another repository) but new here: its ctime is never earlier than
            # its arrival, so crane's settle window errs towards the master.
            published = int(os.lstat(os.path.join(root, layout.blob_path(digest))).st_ctime)
        else:
            published = int(now)
        blobs[digest] = {"size": src.size, "published": published}
    manifests: dict[str, Any] = {}
    for digest, m in plan.manifests.items():
        entry: dict[str, Any] = {"mediaType": m.media_type, "size": m.size, "body": m.body.decode("utf-8")}
        if m.kind == "list":
            entry["manifests"] = m.children
        else:
            entry["blobs"] = [b.digest for b in m.blobs]
            entry.update(_config_facts(m, plan))
        entry.update(m.facts)
        if signatures and signatures.get(digest):
            entry["signatures"] = sigs.metadata_entry(signatures[digest])
        manifests[digest] = entry
    return {
        "type": layout.METADATA_TYPE,
        "version": layout.METADATA_VERSION,
        "repo-registry-id": repo.name,
        "repository": repo.repository or repo.name,
        "protected": bool(repo.protected),
        "urls": {"master": plan.master_url, "mirror": plan.mirror_url},
        "tags": dict(plan.tags),
        "manifests": manifests,
        "blobs": blobs,
        "export": {"id": export_id, "source": repo.source, "exported": metadata.iso_utc(now)},
    }


def export_repository(
    repo: RepositorySource,
    target: ExportTarget,
    *,
    progress: Progress | None = None,
    export_id: str | None = None,
    now: float | None = None,
) -> ExportSummary:
    """Export ``repo`` into ``target``; raise :class:`ExportError` (one-line message) on failure.

    ``now`` (Unix seconds) fixes the clock for ``published`` and provenance (tests, replays).
    """
    t0 = time.monotonic()
    now_ts = time.time() if now is None else float(now)
    prog = _Progress(progress)
    plan = plan_export(repo, target)
    root = os.path.abspath(target.root)
    metadata_dir = os.path.abspath(target.metadata_dir)
    module = target.module or filelist.default_module(root)
    try:
        layout.filelist_name(module)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    meta_path = os.path.join(metadata_dir, layout.metadata_relpath(repo.name))

    summary = ExportSummary(
        name=repo.name,
        tags=dict(plan.tags),
        manifests=len(plan.manifests),
        blobs=len(plan.blobs),
        skipped_schema1=list(plan.skipped_schema1),
        metadata_path=meta_path,
        skipped_tags=list(plan.skipped_tags),
        optional_missing=sorted(plan.optional_missing),
        signatures_unmatched=plan.signatures_unmatched,
    )
    for d in plan.skipped_schema1:
        summary.warnings.append(f"skipped Docker schema 1 manifest {d}")
    if plan.signatures_unmatched:
        summary.warnings.append(
            f"left out {plan.signatures_unmatched} signature(s) of manifests that are not exported"
        )
    if plan.skipped_tags:
        skipped = ", ".join(plan.skipped_tags)
        summary.warnings.append(f"skipped tags pointing at schema 1 manifests: {skipped}")
    for w in summary.warnings:
        log.warning("%s: %s", repo.name, w)

    try:
        with tree_lock(root):
            for p in clean_temp_files(root) + clean_own_temp_files(meta_path):
                log.info("removed leftover temp file %s", p)
            testpoints.reached("locked")
            run = _Run()
            doc: dict[str, Any] | None = None
            try:
                preexisting = _publish_blobs(plan, root, target, run, summary, prog)
                _publish_manifests(plan, root, target, run, summary, prog)
                previous = metadata.load(meta_path)
                signatures = _publish_signatures(plan, repo.name, root, previous, run, summary, prog)
                prog.start("metadata", "Writing metadata", 1)
                _ensure_dir_inside(os.path.dirname(meta_path), metadata_dir, run.dirs, durable=True)
                doc = build_metadata(repo, plan, root, previous, preexisting, now_ts, export_id, signatures)
                summary.metadata_changed = metadata.write_if_changed(meta_path, doc, previous)
            except BaseException:
                # Once the metadata rename happened (a later fsync failed), its files must stay.
                if doc is None or read_if_exists(meta_path) != metadata.dumps(doc):
                    run.rollback()
                raise
            if summary.metadata_changed:
                summary.files_written += 1
                testpoints.reached("metadata")
            # Referenced again: a later prune's grace starts over for these files. The metadata is
            # published already, so a failure here is a warning, not a failed export.
            try:
                rels = {layout.blob_path(d) for d in plan.blobs}
                rels |= {layout.manifest_path(d) for d in plan.manifests}
                rels |= {
                    layout.signature_path(repo.name, d, n)
                    for d, files in signatures.items()
                    for n in range(1, len(files) + 1)
                }
                forget_referenced(metadata_dir, rels)
            except OSError as exc:
                log.warning("could not update the prune state in %s: %s", metadata_dir, exc)
            prog.advance("metadata")
            prog.finish("metadata")
            prog.start("filelist", "Updating the file list", 1)
            summary.filelist_changed = filelist.write_if_changed(root, module)
            if summary.filelist_changed:
                summary.files_written += 1
                testpoints.reached("filelist")
            prog.advance("filelist")
            prog.finish("filelist")
    except OSError as exc:
        raise ExportError(f"export of {repo.name} failed: {exc}") from exc
    summary.seconds = time.monotonic() - t0
    return summary
