"""Hard links when source and tree share a filesystem, verified copies otherwise."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest

from pulp_fedora_mirror import layout

from .conftest import Env
from .ocibuild import standard_layout


def _src(env: Env, layout_dir: str, digest: str) -> str:
    return os.path.join(layout_dir, "blobs", "sha256", digest[7:])


def test_same_filesystem_hard_links(env: Env) -> None:
    s = env.export()
    assert s.blobs_linked == s.blobs and s.blobs_copied == 0
    for digest in [b for b in _blob_digests(env)]:
        assert (
            os.lstat(os.path.join(env.root, layout.blob_path(digest))).st_ino
            == os.lstat(_src(env, env.layout, digest)).st_ino
        )


def _blob_digests(env: Env) -> list[str]:
    import json

    doc = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    return list(doc["blobs"])


def test_forced_copy(env: Env) -> None:
    s = env.export(hardlink=False)
    assert s.blobs_copied == s.blobs and s.blobs_linked == 0
    assert s.bytes_written > 0
    for digest in _blob_digests(env):
        dst = os.lstat(os.path.join(env.root, layout.blob_path(digest)))
        src = os.lstat(_src(env, env.layout, digest))
        assert dst.st_ino != src.st_ino and dst.st_nlink == 1 and dst.st_size == src.st_size


def test_cross_filesystem_copies(env: Env) -> None:
    if os.stat("/dev/shm").st_dev == os.stat(str(env.tmp)).st_dev:
        pytest.skip("/dev/shm and the tmp dir are one filesystem here (forced copy is tested above)")
    shm = tempfile.mkdtemp(dir="/dev/shm")
    try:
        lay = os.path.join(shm, "layout")
        standard_layout(lay, seed="shm")
        s = env.export(lay, name="fedora/shm")
        assert s.blobs_copied == s.blobs and s.blobs_linked == 0
    finally:
        shutil.rmtree(shm)


def test_source_with_other_mode_is_copied_not_chmodded(env: Env) -> None:
    digest = None
    for name in sorted(os.listdir(os.path.join(env.layout, "blobs", "sha256"))):
        digest = "sha256:" + name
        os.chmod(_src(env, env.layout, digest), 0o600)
    s = env.export()
    assert s.blobs_linked == 0 and s.blobs_copied == s.blobs
    assert stat.S_IMODE(os.lstat(_src(env, env.layout, digest)).st_mode) == 0o600
    for d in _blob_digests(env):
        assert stat.S_IMODE(os.lstat(os.path.join(env.root, layout.blob_path(d))).st_mode) == 0o644
