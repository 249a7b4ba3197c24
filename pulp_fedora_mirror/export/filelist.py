"""The file lists at the top of the tree, as Fedora's ``create-filelist`` writes them.

- ``fullfiletimelist-<module>`` (``-t``): what quick-fedora-mirror and MirrorManager's UMDL read;
- ``fullfilelist`` (``-f``): the same entries, paths only (``./``-prefixed, as create-filelist
  prints them);
- ``imagelist-<module>`` (``-i``): the entries whose name ends in an image suffix of productmd.

quick-fedora-mirror's stock configuration fetches all three on every run (``FILELIST`` and
``EXTRAFILES``); with the last two missing every run failed with rsync exit 23 (mirrors.md §9).
Same format and order as create-filelist (mirrors.md §3, layout.md §2) so the existing tools
work unchanged. Each is written only when its content changes (UMDL reruns when the list's ctime
moves, and mirrors re-download it), atomically, and the time list last: a client that sees a new
time list finds the other two already current.
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
#: ``create-filelist -f``: one name for every module directory.
PLAIN_LIST = "fullfilelist"
IMAGE_LIST_PREFIX = "imagelist-"
#: productmd's ``SUPPORTED_IMAGE_FORMATS`` (the suffixes create-filelist matches for ``-i``).
#: Nothing the exporter writes ends in one, so the image list is normally empty; it must exist.
IMAGE_SUFFIXES = tuple(
    "." + f
    for f in (
        "iso",
        "qcow",
        "qcow2",
        "raw",
        "raw.xz",
        "rhevm.ova",
        "sda.raw",
        "tar.gz",
        "tar.xz",
        "vagrant-libvirt.box",
        "vagrant-virtualbox.box",
        "vdi",
        "vmdk",
        "vmx",
        "vsphere.ova",
    )
)


def image_list_name(module: str) -> str:
    """``imagelist-<module>`` (the module name is checked like the time list's)."""
    filelist_name(module)
    return IMAGE_LIST_PREFIX + module


def _skip(name: str, top: bool) -> bool:
    if name.startswith(".") or TEMP_RE.match(name):
        return True
    return top and name.startswith(LIST_PREFIXES)


def _entries(root: str, rel: str) -> Iterator[tuple[str, str]]:
    """(path, time-list line) for every listed entry, a directory's contents before it."""
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
        yield relpath, f"{ts}\t{kind}\t{st.st_size}\t{relpath}"


def render_all(root: str) -> tuple[bytes, bytes, bytes]:
    """(time list, plain list, image list) of the tree at ``root``, from one walk."""
    paths: list[str] = []
    lines = ["[Version]", "2", "", "[Files]"]
    for relpath, line in _entries(root, ""):
        paths.append(relpath)
        lines.append(line)
    lines.append("")
    for algo in CHECKSUM_SECTIONS:
        lines += [f"[Checksums {algo}]", ""]
    lines.append("[End]")
    timelist = ("\n".join(lines) + "\n").encode("utf-8")
    plain = "".join(f"./{p}\n" for p in paths).encode("utf-8")
    images = "".join(f"./{p}\n" for p in paths if p.endswith(IMAGE_SUFFIXES)).encode("utf-8")
    return timelist, plain, images


def render(root: str) -> bytes:
    """The time list (``fullfiletimelist-<module>``) for the tree at ``root``."""
    return render_all(root)[0]


def default_module(root: str) -> str:
    """The module name: the basename of ROOT (``/srv/pub/containers`` → ``containers``)."""
    return os.path.basename(os.path.normpath(os.path.abspath(root)))


def write_lists(root: str, module: str | None = None) -> list[str]:
    """Regenerate the three lists of ``root``; write each atomically only if it changed.

    Returns the names written. The time list goes last (see the module docstring).
    """
    module = module or default_module(root)
    timelist, plain, images = render_all(root)
    written = []
    for name, data in (
        (PLAIN_LIST, plain),
        (image_list_name(module), images),
        (filelist_name(module), timelist),
    ):
        path = os.path.join(root, name)
        if read_if_exists(path) != data:
            write_bytes(path, data)
            written.append(name)
    return written


def write_if_changed(root: str, module: str | None = None) -> bool:
    """:func:`write_lists`; True if any list was written."""
    return bool(write_lists(root, module))
