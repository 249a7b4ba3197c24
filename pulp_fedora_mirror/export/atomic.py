"""Atomic file creation: temp name in the same directory, fsync, rename, fsync the directory.

Readers (rsync, quick-fedora-mirror, crane_fedora) must never see a partial file, and a crash
must never leave one under a real name. A temp name starts with ``.`` so the file list and
crane skip it, and :func:`clean_temp_files` removes leftovers of a crashed run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import secrets
from collections.abc import Iterator

from ..layout import BLOBS_DIR, MANIFESTS_DIR, SIGNATURES_DIR

FILE_MODE = 0o644
DIR_MODE = 0o755

#: ``.<name>.tmp-<random>``: what :func:`temp_path` creates and :func:`clean_temp_files` removes.
TEMP_RE = re.compile(r"^\..+\.tmp-[0-9a-f]{12}\Z")


def temp_path(final: str) -> str:
    """A fresh temp path next to ``final`` (same directory, so ``rename`` is atomic)."""
    head, tail = os.path.split(final)
    return os.path.join(head, f".{tail}.tmp-{secrets.token_hex(6)}")


def fsync_dir(path: str) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def syncfs(path: str) -> None:
    """Flush every dirty inode and directory entry of the filesystem holding ``path``, once.

    One journal commit instead of one ``fsync`` per file and directory: with thousands of small
    files the per-file fsyncs, not the links, dominate an export. Falls back to ``os.sync``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs is None or _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def ensure_inside(path: str, top: str) -> None:
    """Raise OSError if ``path`` (when it exists) resolves outside ``top`` through a symlink.

    ``top`` itself may be a symlink (``/srv/pub -> /mnt/pub``); a symlinked directory below it
    would make writes and deletions land outside the tree.
    """
    if not os.path.lexists(path):
        return
    real_top = os.path.realpath(top)
    real = os.path.realpath(path)
    if real != real_top and not real.startswith(real_top.rstrip("/") + "/"):
        raise OSError(f"{path} resolves to {real}, outside {top}: refusing to go through a symlink")


def makedirs(path: str, created: list[str] | None = None, *, durable: bool = True) -> None:
    """Create ``path`` and missing parents with mode 0755 whatever the umask.

    New directories are appended to ``created`` (parents first) so a failed run can remove them.
    ``durable=False`` skips the parent fsync when the caller runs :func:`syncfs` before anything
    refers to the new directory.
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        makedirs(parent, created, durable=durable)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    os.chmod(path, DIR_MODE)  # mkdir applies the umask
    if created is not None:
        created.append(path)
    if parent and durable:
        fsync_dir(parent)


@contextlib.contextmanager
def removing_on_error(path: str) -> Iterator[str]:
    """Yield ``path``; remove it if the block raises (the temp file of a failed write)."""
    try:
        yield path
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def write_temp(final: str, data: bytes, *, fsync: bool = True) -> str:
    """Write ``data`` to a fresh temp file next to ``final`` (mode 0644); return its path.

    ``fsync=False`` when the caller flushes a whole batch with :func:`syncfs` before renaming.
    """
    tmp = temp_path(final)
    with removing_on_error(tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
    return tmp


def write_bytes(final: str, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically with mode 0644: temp, fsync, rename, fsync dir."""
    tmp = write_temp(final, data)
    with removing_on_error(tmp):
        os.rename(tmp, final)
    fsync_dir(os.path.dirname(final) or ".")


def read_if_exists(path: str) -> bytes | None:
    """The bytes of ``path``, or None if it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def clean_own_temp_files(final: str) -> list[str]:
    """Remove leftover temp files of ``final`` only (``.<name>.tmp-*`` next to it).

    Used in the metadata directory, which several trees (each with its own lock) may share: a
    broader sweep there could delete another exporter's in-flight temp file.
    """
    head, tail = os.path.split(final)
    removed: list[str] = []
    if not os.path.isdir(head):
        return removed
    prefix = f".{tail}.tmp-"
    for fn in os.listdir(head):
        if fn.startswith(prefix) and TEMP_RE.match(fn):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(head, fn))
                removed.append(os.path.join(head, fn))
    return removed


def clean_temp_files(top: str) -> list[str]:
    """Remove temp files left by a crashed run in ``top`` and its blobs/manifests/signatures subtrees.

    Only names matching :data:`TEMP_RE` are removed, so unrelated dot-files survive. Called with
    the tree lock held, so no live writer owns them. Other subdirectories are left alone: a
    nested tree there has its own lock and may have a writer filling its temp files right now.
    """
    removed: list[str] = []
    if not os.path.isdir(top):
        return removed
    walks = [(top, [], sorted(f for f in os.listdir(top) if os.path.isfile(os.path.join(top, f))))]
    for kind in (BLOBS_DIR, MANIFESTS_DIR, SIGNATURES_DIR):
        walks.extend(os.walk(os.path.join(top, kind)))
    for dirpath, _dirnames, filenames in walks:
        for fn in filenames:
            if TEMP_RE.match(fn):
                p = os.path.join(dirpath, fn)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
                    removed.append(p)
    return removed
