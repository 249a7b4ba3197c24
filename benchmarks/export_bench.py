"""Export core benchmark: ``python -m benchmarks.export_bench [--tags N] [--dir DIR]``.

Generates an OCI layout with N tags (each an OCI image: one config and one layer, so 2N blobs and
N manifests), then measures, in one run, on one filesystem:

- a full export with hard links (median of ``--repeat`` rounds), against ``cp -al`` of the same
  files (the floor for "make these files appear in another directory"; target ratio <= 1.5x) and
  against ``cp -al`` + ``sha256sum`` + ``sync -f`` (the same work the exporter must do);
- an unchanged re-export (target <= 1 s, zero files written: by the summary and by a before/after
  snapshot of every inode's size, mtime and ctime);
- an export after one new tag (files written).

Prints a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from pulp_fedora_mirror import mediatypes
from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.ocilayout import read_oci_layout
from pulp_fedora_mirror.export.source import ExportTarget


def _blob(layout: str, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o644)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def add_tag(layout: str, index: list, i: int) -> None:
    """One tag: an OCI image with a unique config and layer (small files)."""
    config = _blob(layout, json.dumps({"n": i}).encode(), "application/vnd.oci.image.config.v1+json")
    layer = _blob(layout, (f"layer {i}\n" * 64).encode(), "application/vnd.oci.image.layer.v1.tar+gzip")
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": config, "layers": [layer]}
    m = _blob(layout, json.dumps(doc).encode(), mediatypes.OCI_MANIFEST)
    m["annotations"] = {"org.opencontainers.image.ref.name": f"t{i}"}
    index.append(m)


def write_index(layout: str, index: list) -> None:
    with open(os.path.join(layout, "oci-layout"), "w") as fh:
        json.dump({"imageLayoutVersion": "1.0.0"}, fh)
    with open(os.path.join(layout, "index.json"), "w") as fh:
        json.dump({"schemaVersion": 2, "manifests": index}, fh)


class PhaseTimer:
    """A Progress sink that records how long each export phase took."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def start(self, code: str, message: str, total: int | None) -> None:
        self.started[code] = time.perf_counter()

    def advance(self, code: str, n: int = 1) -> None:
        pass

    def finish(self, code: str) -> None:
        self.seconds[code] = time.perf_counter() - self.started[code]


def snapshot(*tops: str) -> dict[str, tuple]:
    snap = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames, ""]:
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                snap[p] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return snap


def changed_files(before: dict, after: dict) -> int:
    """Regular files created or modified between two snapshots."""
    return sum(1 for p, v in after.items() if before.get(p) != v and not os.path.isdir(p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--dir", help="work directory (default: a temp dir, removed afterwards)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of the full-export comparison (median)")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="export-bench-", dir=args.dir)
    try:
        layout = os.path.join(work, "layout")
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        index: list = []
        for i in range(args.tags):
            add_tag(layout, index, i)
        write_index(layout, index)
        rows = []
        # Same files the exporter places: every blob AND every manifest (in an OCI layout both are
        # files under blobs/sha256/, and the exporter hard-links both).
        src_dir = os.path.join(layout, "blobs", "sha256")
        files = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir))
        t = time.perf_counter()
        repo = read_oci_layout(layout, "bench/repo")
        t_read = time.perf_counter() - t
        n_blobs = len(repo.blobs)

        def cp_al(dst: str) -> float:
            os.mkdir(dst)
            t = time.perf_counter()
            subprocess.run(["cp", "-al", "-t", dst, *files], check=True)
            return time.perf_counter() - t

        def cp_al_verify(dst: str) -> float:
            """The same work the exporter must do (docs/layout.md §3): link, hash, make durable."""
            os.mkdir(dst)
            t = time.perf_counter()
            subprocess.run(["cp", "-al", "-t", dst, *files], check=True)
            subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["sync", "-f", dst], check=True)
            return time.perf_counter() - t

        def export(i: int) -> tuple[float, Any, PhaseTimer, ExportTarget]:
            target = ExportTarget(
                root=os.path.join(work, f"containers-{i}"),
                metadata_dir=os.path.join(work, f"meta-{i}"),
                master_url="https://dl.example.org/pub/containers/",
            )
            phases = PhaseTimer()
            t = time.perf_counter()
            summary = export_repository(read_oci_layout(layout, "bench/repo"), target, progress=phases)
            return time.perf_counter() - t, summary, phases, target

        # Rounds interleave the three so that the disk's good and bad moments hit all of them.
        t_cp, t_cpv, t_exp = [], [], []
        for i in range(args.repeat):
            t_cp.append(cp_al(os.path.join(work, f"cp-al-{i}")))
            t_cpv.append(cp_al_verify(os.path.join(work, f"cp-al-verify-{i}")))
            took, s, phases, target = export(i)
            t_exp.append(took)
            assert s.blobs_linked == n_blobs, "expected hard links (same filesystem)"
            assert s.blobs_linked + s.manifests_written == len(files), (s, len(files))
        root, meta = target.root, target.metadata_dir

        def stat(xs: list[float]) -> str:
            return f"{statistics.median(xs):.2f} s ({min(xs):.2f} to {max(xs):.2f})"

        t_full, t_cp_m, t_cpv_m = (statistics.median(x) for x in (t_exp, t_cp, t_cpv))
        ratio = t_full / t_cp_m
        verdict = "OK" if ratio <= 1.5 else "MISSED"
        rows.append(
            (
                f"full export, hard links ({args.tags} tags, {n_blobs} blobs, {s.manifests} manifests)",
                stat(t_exp),
                f"{s.files_written} files linked and hash-checked, 2-hex shard dirs created; phases of "
                "the last run: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.seconds.items()),
            )
        )
        rows.append(
            (
                f"`cp -al` of the same {len(files)} files (flat, no verification, no fsync)",
                stat(t_cp),
                f"export / cp -al = {ratio:.2f}x (target <= 1.5x) {verdict}",
            )
        )
        rows.append(
            (
                "`cp -al` + `sha256sum` + `sync -f` of the same files (the same work: link, verify, durable)",
                stat(t_cpv),
                f"export / this = {t_full / t_cpv_m:.2f}x",
            )
        )
        rows.append(("read OCI layout (not in the export time)", f"{t_read:.2f} s", ""))

        before = snapshot(root, meta)
        t = time.perf_counter()
        s2 = export_repository(read_oci_layout(layout, "bench/repo"), target)
        t_re = time.perf_counter() - t
        snap_changed = changed_files(before, snapshot(root, meta))
        ok = t_re <= 1.0 and s2.files_written == 0 and snap_changed == 0
        rows.append(
            (
                "re-export, unchanged (incl. layout read)",
                f"{t_re:.2f} s",
                f"files written: {s2.files_written} (summary), {snap_changed} (snapshot); "
                f"target <= 1 s and 0 files {'OK' if ok else 'MISSED'}",
            )
        )

        add_tag(layout, index, args.tags)
        write_index(layout, index)
        before = snapshot(root, meta)
        t = time.perf_counter()
        s3 = export_repository(read_oci_layout(layout, "bench/repo"), target)
        t_new = time.perf_counter() - t
        snap_changed = changed_files(before, snapshot(root, meta))
        rows.append(
            (
                "export after one new tag (incl. layout read)",
                f"{t_new:.2f} s",
                f"files written: {s3.files_written} (summary: 2 blobs, 1 manifest, metadata, file list), "
                f"{snap_changed} (snapshot)",
            )
        )

        print("| case | time | notes |")
        print("|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} |")
        return 0
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
