"""Put one blob into the tree: hard link when possible, else a stream copy; always verified.

Every *new* tree file is hashed from the source before it gets its real name, so a corrupt
artifact is never published under a digest it does not have. Files already in the tree are checked
by size only (hashing the whole tree on every export would not scale) and never touched: even a
``chmod`` bumps the ctime and with it the file list entry of every mirror (mirrors.md §3).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from typing import BinaryIO

from . import testpoints
from .atomic import FILE_MODE, removing_on_error, temp_path
from .errors import ExportError
from .source import BlobSource

CHUNK = 1 << 20


def _describe(src: BlobSource) -> str:
    return src.path if src.path else "<opener>"


def _hash_stream(fh: BinaryIO, out_fd: int | None = None) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while chunk := fh.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
        if out_fd is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(out_fd, view) :]
    return "sha256:" + h.hexdigest(), n


def _check(src: BlobSource, digest: str, size: int) -> None:
    if digest != src.digest or size != src.size:
        raise ExportError(
            f"blob {src.digest}: source {_describe(src)} has {digest} and {size} bytes, "
            f"expected {src.size} bytes (corrupt source, nothing published)"
        )


def _linkable(src: BlobSource) -> bool:
    """Link only files that already have the tree's mode: chmod-ing Pulp's storage is not ours."""
    if not src.path:
        return False
    try:
        st = os.stat(src.path)
    except FileNotFoundError:
        raise ExportError(f"blob {src.digest}: source file {src.path} does not exist") from None
    return stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == FILE_MODE


def _try_link(src: BlobSource, tmp: str) -> bool:
    """Hard-link the source to ``tmp``; False where the file system cannot (then copy instead)."""
    assert src.path
    try:
        os.link(src.path, tmp)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
            return False
        raise
    return True


def _open_source(src: BlobSource) -> BinaryIO:
    if src.path:
        try:
            return open(src.path, "rb")  # closed by the caller
        except FileNotFoundError:
            raise ExportError(f"blob {src.digest}: source file {src.path} does not exist") from None
    if src.opener is None:
        raise ExportError(f"blob {src.digest}: source has neither a path nor an opener")
    return src.opener()


def _link_verified(src: BlobSource, dest: str, kind: str) -> bool:
    """Hash the source inode, then hard-link that very inode to ``dest``; False if not linkable.

    No temp name is needed: a link appears whole or not at all. The inode is hashed through an
    open descriptor and the new link is checked to be that inode, so a source swapped between the
    hash and the link is never published. The caller passes a ``dest`` that does not exist.
    """
    assert src.path
    try:
        fh = open(src.path, "rb")
    except FileNotFoundError:
        raise ExportError(f"{kind} {src.digest}: source file {src.path} does not exist") from None
    with fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != FILE_MODE:
            return False  # chmod-ing Pulp's storage is not ours: copy instead
        digest = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
        _check(src, digest, st.st_size)
        testpoints.reached(f"{kind}-verified {src.digest}")
        if not _try_link(src, dest):
            return False
        linked = os.lstat(dest)
        if (linked.st_ino, linked.st_dev) != (st.st_ino, st.st_dev):
            os.unlink(dest)
            raise ExportError(f"{kind} {src.digest}: source file {src.path} changed while exporting")
    return True


def place_blob(
    src: BlobSource, dest: str, *, hardlink: bool = True, kind: str = "blob", replacing: bool | None = None
) -> str:
    """Create ``dest`` from ``src`` atomically; return ``"linked"`` or ``"copied"``.

    The caller has made sure ``dest`` does not exist (or is corrupt) and its directory exists.
    ``kind`` names the file in errors and test points (manifests from a layout are placed too).
    A new name is hard-linked directly (after hashing); replacing a corrupt file, and copying,
    go through a temp name and a rename. ``replacing`` says whether ``dest`` exists (the caller
    usually knows; None means look).
    """
    if replacing is None:
        replacing = os.path.lexists(dest)
    if hardlink and src.path and not replacing and _link_verified(src, dest, kind):
        return "linked"
    tmp = temp_path(dest)
    with removing_on_error(tmp):
        if hardlink and _linkable(src) and _try_link(src, tmp):
            how = "linked"
            with open(tmp, "rb") as fh:
                digest = "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()
                size = os.fstat(fh.fileno()).st_size
        else:
            how = "copied"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)
                with contextlib.closing(_open_source(src)) as fh:
                    digest, size = _hash_stream(fh, fd)
                os.fsync(fd)
            finally:
                os.close(fd)
        _check(src, digest, size)
        testpoints.reached(f"{kind}-temp {src.digest}")
        os.rename(tmp, dest)
    return how
