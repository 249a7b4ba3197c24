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
from .signatures import previous_signatures

KINDS = (layout.BLOBS_DIR, layout.MANIFESTS_DIR, layout.SIGNATURES_DIR)


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


@dataclass
class References:
    """What the metadata files reference in the tree."""

    #: relative tree path -> expected size (blobs, manifests, signatures)
    sizes: dict[str, int] = field(default_factory=dict)
    #: signature path -> its expected bytes (signatures are not content-addressed)
    signatures: dict[str, bytes] = field(default_factory=dict)
    #: ``signatures/<name>@sha256=<hex>`` of every manifest a repository ``<name>`` exports: its
    #: signatures go only with the manifest (prune), whatever an older metadata file listed
    signature_dirs: set[str] = field(default_factory=set)


def references(metadata_dir: str) -> References:
    """Everything every native (version 5 or 6) metadata file under ``metadata_dir`` references."""
    refs = References()
    for _path, doc in iter_all(metadata_dir):
        name = doc.get("repo-registry-id")
        for digest, info in (doc.get("blobs") or {}).items():
            refs.sizes[layout.blob_path(digest)] = int(info.get("size", -1))
        for digest, info in (doc.get("manifests") or {}).items():
            refs.sizes[layout.manifest_path(digest)] = int(info.get("size", -1))
            if not isinstance(name, str) or not layout.is_valid_name(name):
                continue
            refs.signature_dirs.add(layout.signature_dir(name, digest))
            for n, data in enumerate(previous_signatures(doc, digest), 1):
                rel = layout.signature_path(name, digest, n)
                refs.sizes[rel] = len(data)
                refs.signatures[rel] = data
    return refs


def referenced(metadata_dir: str) -> dict[str, int]:
    """Relative tree path -> expected size, over every native (version 5 or 6) metadata file."""
    return references(metadata_dir).sizes


def tree_files(root: str) -> dict[str, os.stat_result]:
    """Every file under ROOT/blobs, ROOT/manifests and ROOT/signatures (temp files included)."""
    found: dict[str, os.stat_result] = {}
    for kind in KINDS:
        top = os.path.join(root, kind)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for fn in sorted(filenames):
                full = os.path.join(dirpath, fn)
                found[os.path.relpath(full, root)] = os.lstat(full)
    return found


def _verify_signature(
    root: str,
    rel: str,
    st: os.stat_result,
    files: dict[str, os.stat_result],
    refs: References,
    with_metadata: bool,
    res: VerifyResult,
) -> None:
    """A lookaside file: a valid name, no gap before it, mode 0644, the bytes the metadata lists."""
    parsed = layout.parse_signature_path(rel)
    if parsed is None or not stat.S_ISREG(st.st_mode):
        res.stray.append(rel)
        return
    name, digest, n = parsed
    if n > 1 and layout.signature_path(name, digest, n - 1) not in files:
        res.stray.append(rel)  # after a gap: no client would ever fetch it
        return
    res.checked += 1
    if stat.S_IMODE(st.st_mode) != FILE_MODE:
        res.bad_modes.append(rel)
    if not with_metadata:
        return
    expected = refs.signatures.get(rel)
    if expected is None:
        res.unreferenced.append(rel)
    elif st.st_size != len(expected):
        res.wrong_size.append(rel)
    else:
        with open(os.path.join(root, rel), "rb") as fh:
            if fh.read() != expected:
                res.wrong_digest.append(rel)


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
    full_refs = references(metadata_dir) if metadata_dir else References()
    refs = full_refs.sizes
    for rel, st in sorted(files.items()):
        name = os.path.basename(rel)
        if TEMP_RE.match(name):
            res.temp_files.append(rel)
            continue
        if rel.startswith(layout.SIGNATURES_DIR + "/"):
            _verify_signature(root, rel, st, files, full_refs, metadata_dir is not None, res)
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
