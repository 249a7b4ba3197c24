"""A symlink inside ROOT or METADATA_DIR never makes the exporter write outside them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export.errors import ExportError
from pulp_fedora_mirror.export.prune import prune

from .conftest import Env


def _files(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def _first_blob_shard(env: Env) -> str:
    env.export()
    blobs = sorted(p for p in Path(env.root, "blobs", "sha256").iterdir())
    shard = blobs[0]
    for f in shard.iterdir():
        f.unlink()
    shard.rmdir()
    return str(shard)


@pytest.mark.parametrize("where", ["blobs", "blobs/sha256", "manifests", "shard"])
def test_tree_symlink_is_not_written_through(env: Env, tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    if where == "shard":
        link = _first_blob_shard(env)
    else:
        os.makedirs(env.root, exist_ok=True)
        link = os.path.join(env.root, where)
        os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(outside, link)
    with pytest.raises(ExportError, match="outside"):
        env.export()
    assert _files(outside) == []


def test_metadata_symlink_is_not_written_through(env: Env, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(env.meta)
    os.symlink(outside, os.path.join(env.meta, "fedora"))
    with pytest.raises(ExportError, match="outside"):
        env.export(name="fedora/busybox")
    assert _files(outside) == []
    assert layout.metadata_relpath("fedora/busybox") == "fedora/busybox.json"


def test_symlinked_root_itself_is_fine(env: Env, tmp_path: Path) -> None:
    """ROOT and METADATA_DIR themselves may be symlinks (e.g. /srv/pub -> /mnt/pub)."""
    real_root, real_meta = tmp_path / "real-root", tmp_path / "real-meta"
    real_root.mkdir()
    real_meta.mkdir()
    os.symlink(real_root, env.root)
    os.symlink(real_meta, env.meta)
    s = env.export()
    assert s.blobs and (real_meta / "fedora" / "busybox.json").exists()


def test_nested_tree_temp_files_survive_the_outer_export(env: Env) -> None:
    """Nested trees (allowed when they share metadata) have separate locks: the outer tree's
    leftover-temp sweep must not delete a temp file the inner tree's writer is still filling."""
    inner = os.path.join(env.root, "sub")
    shard = os.path.join(inner, "blobs", "sha256", "ab")
    os.makedirs(shard)
    in_flight = os.path.join(shard, ".ab" + "0" * 62 + ".tmp-0123456789ab")
    Path(in_flight).write_bytes(b"being written")
    top_level = os.path.join(inner, ".fullfiletimelist-sub.tmp-0123456789ab")
    Path(top_level).write_bytes(b"being written")
    env.export()
    assert os.path.exists(in_flight) and os.path.exists(top_level)
    # The outer tree's own leftovers are still swept.
    own = os.path.join(env.root, "blobs", ".x.tmp-0123456789ab")
    Path(own).write_bytes(b"crashed")
    env.export()
    assert not os.path.exists(own)


@pytest.mark.parametrize("where", ["blobs", "manifests"])
def test_prune_does_not_delete_through_a_symlinked_top_dir(env: Env, tmp_path: Path, where: str) -> None:
    env.export()
    outside = tmp_path / "outside"
    victim = outside / "sha256" / "ab" / ("ab" + "0" * 62)
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"someone else's file")
    os.rename(os.path.join(env.root, where), tmp_path / "moved")
    os.symlink(outside, os.path.join(env.root, where))
    with pytest.raises(ExportError, match="outside"):
        prune(env.root, env.meta, 0)
    assert victim.exists()


def test_prune_does_not_write_state_through_a_symlink(env: Env, tmp_path: Path) -> None:
    env.export()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(env.meta, ".fedora-mirror"))
    with pytest.raises(ExportError, match="outside"):
        prune(env.root, env.meta, 0)
    assert _files(outside) == []
