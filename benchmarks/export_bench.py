"""Export core benchmark: ``python -m benchmarks.export_bench [--tags N] [--dir DIR]``.

Generates an OCI layout with N tags (each an OCI image: one config and one layer, so 2N blobs and
N manifests), then measures, in one run, on one filesystem:

- a full export with hard links, against ``cp -al`` of the same blob files (the floor for "make
  these files appear in another directory"); target ratio <= 1.5x;
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
import subprocess
import sys
import tempfile
import time

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


def _image_blobs(layout: str, digest: str) -> list[dict]:
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "rb") as fh:
        doc = json.load(fh)
    return [doc["config"], *doc["layers"]]


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
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="export-bench-", dir=args.dir)
    try:
        layout = os.path.join(work, "layout")
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        index: list = []
        for i in range(args.tags):
            add_tag(layout, index, i)
        write_index(layout, index)
        root, meta = os.path.join(work, "containers"), os.path.join(work, "meta")
        target = ExportTarget(
            root=root, metadata_dir=meta, master_url="https://dl.example.org/pub/containers/"
        )
        rows = []

        # References first: linking bumps the shared inodes' ctime, which must not land between our
        # runs. Same files the exporter places: every blob AND every manifest (in an OCI layout
        # both are files under blobs/sha256/; the exporter hard-links both).
        src_dir = os.path.join(layout, "blobs", "sha256")
        files = sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir))
        cp_dst = os.path.join(work, "cp-al")
        os.mkdir(cp_dst)
        t = time.perf_counter()
        subprocess.run(["cp", "-al", "-t", cp_dst, *files], check=True)
        t_cp = time.perf_counter() - t
        # The same work the exporter must do (docs/layout.md §3): link, hash every new file, make
        # it durable. cp -al + sha256sum + sync -f of the same files.
        cpv_dst = os.path.join(work, "cp-al-verify")
        os.mkdir(cpv_dst)
        t = time.perf_counter()
        subprocess.run(["cp", "-al", "-t", cpv_dst, *files], check=True)
        subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["sync", "-f", cpv_dst], check=True)
        t_cpv = time.perf_counter() - t

        t = time.perf_counter()
        repo = read_oci_layout(layout, "bench/repo")
        t_read = time.perf_counter() - t
        n_blobs = len(repo.blobs)
        t = time.perf_counter()
        phases = PhaseTimer()
        s = export_repository(repo, target, progress=phases)
        t_full = time.perf_counter() - t
        assert s.blobs_linked == n_blobs, "expected hard links (same filesystem)"
        assert s.blobs_linked + s.manifests_written == len(files), (s, len(files))

        ratio = t_full / t_cp
        verdict = "OK" if ratio <= 1.5 else "MISSED"
        rows.append(
            (
                f"full export, hard links ({args.tags} tags, {n_blobs} blobs, {s.manifests} manifests)",
                f"{t_full:.2f} s",
                f"{s.files_written} files linked and hash-checked, 2-hex shard dirs created; phases: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in phases.seconds.items()),
            )
        )
        rows.append(
            (
                f"`cp -al` of the same {len(files)} files (flat, no verification, no fsync)",
                f"{t_cp:.2f} s",
                f"export / cp -al = {ratio:.2f}x (target <= 1.5x) {verdict}",
            )
        )
        rows.append(
            (
                "`cp -al` + `sha256sum` + `sync -f` of the same files (the same work: link, verify, durable)",
                f"{t_cpv:.2f} s",
                f"export / this = {t_full / t_cpv:.2f}x",
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
