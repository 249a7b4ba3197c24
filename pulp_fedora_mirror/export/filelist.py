"""``fullfiletimelist-<module>``: the file list quick-fedora-mirror and MirrorManager's UMDL read.

Same format as Fedora's ``create-filelist`` (mirrors.md §3, layout.md §2) so the existing tools
work unchanged. Written only when its content changes: UMDL reruns when the list's ctime moves, and
mirrors re-download it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from ..layout import FILELIST_PREFIX, filelist_name
from .atomic import TEMP_RE, read_if_exists, write_bytes

#: Top-level list files of create-filelist; never listed themselves.
LIST_PREFIXES = (FILELIST_PREFIX, "fulltimelist-", "fullfilelist", "imagelist-")
CHECKSUM_SECTIONS = ("SHA1", "MD5", "SHA256", "SHA512")


def _skip(name: str, top: bool) -> bool:
    if name.startswith(".") or TEMP_RE.match(name):
        return True
    return top and name.startswith(LIST_PREFIXES)


def _entries(root: str, rel: str) -> Iterator[str]:
    path = os.path.join(root, rel) if rel else root
    with os.scandir(path) as it:
        names = sorted(e.name for e in it)
    for name in names:
        if _skip(name, top=not rel):
            continue
        relpath = f"{rel}/{name}" if rel else name
        full = os.path.join(root, relpath)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.stat(full)
            except FileNotFoundError:
                continue  # dangling
            kind, check = "l", target
        elif stat.S_ISDIR(st.st_mode):
            yield from _entries(root, relpath)
            kind, check = "d", st
        elif stat.S_ISREG(st.st_mode):
            kind, check = "f", st
        else:
            continue
        if not check.st_mode & stat.S_IRGRP:
            continue  # create-filelist omits what the group cannot read
        if not check.st_mode & stat.S_IROTH:
            kind += "-"
        ts = int(max(st.st_mtime, st.st_ctime))
        yield f"{ts}\t{kind}\t{st.st_size}\t{relpath}"


def render(root: str) -> bytes:
    """The full list for the tree at ``root``."""
    lines = ["[Version]", "2", "", "[Files]", *_entries(root, ""), ""]
    for algo in CHECKSUM_SECTIONS:
        lines += [f"[Checksums {algo}]", ""]
    lines.append("[End]")
    return ("\n".join(lines) + "\n").encode("utf-8")


def default_module(root: str) -> str:
    """The module name: the basename of ROOT (``/srv/pub/containers`` → ``containers``)."""
    return os.path.basename(os.path.normpath(os.path.abspath(root)))


def write_if_changed(root: str, module: str | None = None) -> bool:
    """Regenerate the list of ``root``; write it atomically only if it changed. True if written."""
    path = os.path.join(root, filelist_name(module or default_module(root)))
    data = render(root)
    if read_if_exists(path) == data:
        return False
    write_bytes(path, data)
    return True
