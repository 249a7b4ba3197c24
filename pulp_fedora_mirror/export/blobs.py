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


def place_blob(src: BlobSource, dest: str, *, hardlink: bool = True) -> str:
    """Create ``dest`` from ``src`` atomically; return ``"linked"`` or ``"copied"``.

    The caller has made sure ``dest`` does not exist (or is corrupt) and its directory exists.
    """
    tmp = temp_path(dest)
    with removing_on_error(tmp):
        if hardlink and _linkable(src) and _try_link(src, tmp):
            how = "linked"
            with open(tmp, "rb") as fh:
                digest, size = _hash_stream(fh)
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
        testpoints.reached(f"blob-temp {src.digest}")
        os.rename(tmp, dest)
    return how
