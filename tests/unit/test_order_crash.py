"""Write order and crash safety, observed on the real tree of a real exporter process.

The exporter runs as ``fedora-mirror export`` in a subprocess with test points on
(tests/unit/testpoint_runner.py): it stops itself (SIGSTOP) right after every publishing rename,
and just before renaming a verified blob temp file. At every stop the test checks what a reader
would see; the crash tests SIGKILL it at chosen stops and rerun the export.
"""

from __future__ import annotations

import os

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export import filelist, metadata
from pulp_fedora_mirror.export.atomic import TEMP_RE
from pulp_fedora_mirror.export.verify import verify

from .conftest import Env, run_cli


def assert_readers_safe(root: str, meta: str) -> None:
    """Everything any published metadata or file list references exists, whole and correct."""
    if os.path.isdir(meta):
        for _path, doc in metadata.iter_all(meta):
            for digest, info in doc["blobs"].items():
                p = os.path.join(root, layout.blob_path(digest))
                assert os.path.getsize(p) == info["size"], p
            for digest, info in doc["manifests"].items():
                p = os.path.join(root, layout.manifest_path(digest))
                assert os.path.getsize(p) == info["size"], p
    lst = os.path.join(root, "fullfiletimelist-containers")
    if os.path.exists(lst):
        text = open(lst).read()
        files = text.split("[Files]\n", 1)[1].split("\n\n", 1)[0]
        for line in files.splitlines():
            assert os.path.lexists(os.path.join(root, line.split("\t")[3])), line
    if os.path.isdir(root):
        res = verify(root)
        assert not res.wrong_digest and not res.stray, res


def _kind(label: str) -> str:
    return label.split(" ", 1)[0]


def test_write_order_observed(env: Env, paused) -> None:
    p = paused(env.cli_args())
    seen_metadata_during: list[str] = []
    while (label := p.next_stop()) is not None:
        assert_readers_safe(env.root, env.meta)
        meta_file = os.path.join(env.meta, "fedora", "busybox.json")
        if os.path.exists(meta_file):
            seen_metadata_during.append(label)
        if label == "metadata":
            # the file list is not written yet: it still does not exist on a first export
            assert not os.path.exists(os.path.join(env.root, "fullfiletimelist-containers"))
        p.resume()
    assert p.status == 0, p.proc.stderr.read()
    kinds = [_kind(x) for x in p.labels]
    assert kinds[0] == "locked"
    last_blob = max(i for i, k in enumerate(kinds) if k == "blob")
    first_manifest = kinds.index("manifest")
    last_manifest = max(i for i, k in enumerate(kinds) if k == "manifest")
    assert last_blob < first_manifest
    assert last_manifest < kinds.index("metadata") < kinds.index("filelist") == len(kinds) - 1
    # hard links: each source is hashed ("verified") and then linked under its final name
    assert kinds.count("blob") == kinds.count("blob-verified") == 20
    assert kinds.count("blob-temp") == 0
    assert kinds.count("manifest") == 9
    # manifests of an OCI layout are hard-linked from its blob files, hash-checked like blobs
    assert kinds.count("manifest-verified") == 9
    # metadata became visible only at its own stop, never while content was still arriving
    assert seen_metadata_during == ["metadata", "filelist"]
    assert_readers_safe(env.root, env.meta)


def test_reexport_with_new_content_keeps_readers_safe(env: Env, paused) -> None:
    env.export()
    standard = os.path.join(env.tmp, "second")
    from .ocibuild import standard_layout

    standard_layout(standard, seed="b")
    p = paused(env.cli_args(standard))
    n = 0
    while p.next_stop() is not None:
        assert_readers_safe(env.root, env.meta)
        n += 1
        p.resume()
    assert p.status == 0 and n > 20


KILL_POINTS = [
    # OCI layout export: blobs and manifests hash-checked, then hard-linked under their final names
    ("link", "locked", 1),
    ("link", "blob-verified", 1),
    ("link", "blob", 3),
    ("link", "blob-verified", 20),
    ("link", "manifest-verified", 1),
    ("link", "manifest", 1),
    ("link", "manifest", 9),
    ("link", "metadata", 1),
    ("link", "filelist", 1),
    # --copy: blobs copied through temp names, manifests written from their bytes in one batch
    # (the Pulp path)
    ("copy", "blob-temp", 1),
    ("copy", "blob-temp", 20),
    ("copy", "manifest", 1),
    ("copy", "manifest", 9),
    ("copy", "metadata", 1),
]


def _temps_expected(mode: str, kind: str, nth: int) -> bool:
    """Where a kill leaves temp files: a copied file waiting for its rename, or (batch write)
    manifests written and flushed but not all renamed yet. A hard link has no temp name."""
    if kind == "blob-temp":
        return True
    return mode == "copy" and kind == "manifest" and nth < 9


@pytest.mark.parametrize(
    ("mode", "kind", "nth"), KILL_POINTS, ids=[f"{m}-{k}-{n}" for m, k, n in KILL_POINTS]
)
def test_sigkill_then_rerun(env: Env, paused, mode: str, kind: str, nth: int) -> None:
    args = env.cli_args() + (["--copy"] if mode == "copy" else [])
    p = paused(args)
    count = 0
    while True:
        label = p.next_stop()
        assert label is not None, "exporter finished before the kill point"
        if _kind(label) == kind:
            count += 1
            if count == nth:
                break
        p.resume()
    p.kill()
    assert p.status == -9
    # what a reader sees right after the crash is consistent
    assert_readers_safe(env.root, env.meta)
    meta_file = os.path.join(env.meta, "fedora", "busybox.json")
    assert os.path.exists(meta_file) == (kind in ("metadata", "filelist"))
    temps = [f for _d, _s, fs in os.walk(env.root) for f in fs if TEMP_RE.match(f)]
    assert bool(temps) == _temps_expected(mode, kind, nth), temps

    r = run_cli(*env.cli_args())
    assert r.returncode == 0, r.stderr
    res = verify(env.root, env.meta)
    assert res.ok and not res.temp_files and not res.unreferenced and not res.missing, res
    assert open(os.path.join(env.root, "fullfiletimelist-containers"), "rb").read() == filelist.render(
        env.root
    )
    # same tree as an uninterrupted export
    clean = Env(
        env.tmp, env.layout, str(env.tmp / "clean" / "containers"), str(env.tmp / "clean-meta"), env.descs
    )
    clean.export(hardlink=False)  # a link would bump the shared inodes' ctime, changing our list

    def files(top: str) -> set[str]:
        return {os.path.relpath(os.path.join(d, f), top) for d, _s, fs in os.walk(top) for f in fs}

    assert files(env.root) == files(clean.root)
    assert files(env.meta) == files(clean.meta)
    # and a further run is a no-op
    r = run_cli(*env.cli_args(), "--json")
    assert '"files_written": 0' in r.stdout


def test_leftover_temp_files_are_cleaned(env: Env) -> None:
    env.export()
    shard = os.path.dirname(os.path.join(env.root, layout.blob_path(env.descs["oci"]["digest"])))
    os.makedirs(shard, exist_ok=True)
    stale_tree = os.path.join(shard, ".abc.tmp-0123456789ab")
    own = os.path.join(env.meta, "fedora", ".busybox.json.tmp-0123456789ab")
    other = os.path.join(env.meta, "fedora", ".other.json.tmp-0123456789ab")  # another tree's writer
    unrelated = os.path.join(env.root, ".keep-me")
    for p in (stale_tree, own, other, unrelated):
        open(p, "w").close()
    env.export()
    assert not os.path.exists(stale_tree) and not os.path.exists(own)
    assert os.path.exists(other) and os.path.exists(unrelated)


def test_source_swapped_between_hash_and_link_is_refused(env: Env, paused) -> None:
    """The exporter hashes a source inode and then links it: if the file at the source path is
    replaced in between (another inode, other bytes), the new link must not survive and nothing
    may be published. Produced for real: the exporter stops itself right after the hash."""
    p = paused(env.cli_args())
    while (label := p.next_stop()) is not None:
        if label.startswith("blob-verified "):
            digest = label.split(" ", 1)[1]
            src = os.path.join(env.layout, "blobs", "sha256", digest.split(":", 1)[1])
            evil = src + ".evil"
            with open(evil, "wb") as fh:
                fh.write(b"x" * os.path.getsize(src))
            os.chmod(evil, 0o644)
            os.rename(evil, src)  # same path, new inode, wrong content
            p.resume()
            break
        p.resume()
    while p.next_stop() is not None:
        p.resume()
    assert p.status == 1
    err = p.proc.stderr.read().decode()
    last = err.strip().splitlines()[-1]
    assert last.startswith("fedora-mirror: blob ") and "changed while exporting" in last, err
    assert digest in last and "Traceback" not in err, err
    # nothing was published: no metadata, no file list, no blob or manifest left behind
    assert not os.path.exists(os.path.join(env.meta, "fedora", "busybox.json"))
    assert not os.path.exists(os.path.join(env.root, "fullfiletimelist-containers"))
    left = [f for _d, _s, fs in os.walk(env.root) for f in fs]
    assert left == [], left


def test_production_cli_cannot_be_stopped_by_test_points(env, tmp_path):
    """The old switch (an environment variable naming a log file) no longer turns them on."""
    from .conftest import run_cli

    log = tmp_path / "points.log"
    res = run_cli(
        "export", env.layout, "--name", "fedora/busybox", "--root", env.root,
        "--metadata-dir", env.meta, "--master-url", "https://dl.example.org/pub/containers/",
        env_extra={"FEDORA_MIRROR_TESTPOINTS": str(log)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not log.exists()
