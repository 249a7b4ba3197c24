"""Check a mirror tree against its own names and, optionally, against the metadata that uses it.

Export trusts existing files by size (hashing everything on each export does not scale); this is
the slow, thorough counterpart an admin runs from cron or after an incident.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import layout
from .atomic import DIR_MODE, FILE_MODE, TEMP_RE
from .errors import ExportError
from .metadata import iter_all

KINDS = (layout.BLOBS_DIR, layout.MANIFESTS_DIR)


@dataclass
class VerifyResult:
    """Problems found, as paths relative to ROOT (``unreferenced`` only with a metadata dir)."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    wrong_digest: list[str] = field(default_factory=list)
    unreferenced: list[str] = field(default_factory=list)
    bad_modes: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Unreferenced files and leftover temp files are normal (prune/next export); the rest is not."""
        return not (self.missing or self.wrong_size or self.wrong_digest or self.bad_modes or self.stray)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def referenced(metadata_dir: str) -> dict[str, int]:
    """Relative tree path -> expected size, over every native (version 5 or 6) metadata file."""
    refs: dict[str, int] = {}
    for _path, doc in iter_all(metadata_dir):
        for digest, info in (doc.get("blobs") or {}).items():
            refs[layout.blob_path(digest)] = int(info.get("size", -1))
        for digest, info in (doc.get("manifests") or {}).items():
            refs[layout.manifest_path(digest)] = int(info.get("size", -1))
    return refs


def tree_files(root: str) -> dict[str, os.stat_result]:
    """Every regular (non-temp) file under ROOT/blobs and ROOT/manifests; checks dir modes too."""
    found: dict[str, os.stat_result] = {}
    for kind in KINDS:
        top = os.path.join(root, kind)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                found[os.path.relpath(full, root)] = os.lstat(full)
    return found


def verify(root: str, metadata_dir: str | None = None) -> VerifyResult:
    """Hash every tree file, check names, sizes, modes; with ``metadata_dir``, check references."""
    if not os.path.isdir(root):
        raise ExportError(f"{root} is not a directory")
    if metadata_dir is not None and not os.path.isdir(metadata_dir):
        raise ExportError(f"metadata directory {metadata_dir} does not exist")
    res = VerifyResult()
    for kind in KINDS:
        for dirpath, _dirnames, _files in os.walk(os.path.join(root, kind)):
            if stat.S_IMODE(os.lstat(dirpath).st_mode) != DIR_MODE:
                res.bad_modes.append(os.path.relpath(dirpath, root) + "/")
    files = tree_files(root)
    refs = referenced(metadata_dir) if metadata_dir else {}
    for rel, st in sorted(files.items()):
        name = os.path.basename(rel)
        if TEMP_RE.match(name):
            res.temp_files.append(rel)
            continue
        parts = rel.split("/")
        digest = f"sha256:{name}"
        if (
            len(parts) != 4
            or parts[1] != "sha256"
            or not layout.DIGEST_RE.match(digest)
            or parts[2] != name[:2]
            or not stat.S_ISREG(st.st_mode)
        ):
            res.stray.append(rel)
            continue
        res.checked += 1
        if stat.S_IMODE(st.st_mode) != FILE_MODE:
            res.bad_modes.append(rel)
        if _sha256(os.path.join(root, rel)) != digest:
            res.wrong_digest.append(rel)
        if metadata_dir is not None:
            if rel not in refs:
                res.unreferenced.append(rel)
            elif refs[rel] != st.st_size:
                res.wrong_size.append(rel)
    res.missing = sorted(set(refs) - set(files))
    return res
