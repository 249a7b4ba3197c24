"""Simple-signing signatures: read a lookaside store, number them, write the tree's own store.

The tree keeps a containers/image lookaside store (docs/layout.md §2):
``ROOT/signatures/<name>@sha256=<hex>/signature-<n>``. A client stops at the first missing number,
so numbers run from 1 without gaps, and a file once published never changes: a client (or a
mirror) that has fetched ``signature-1`` must never see it turn into another signature. New
signatures of a manifest therefore get the next free number; the numbering already published
(previous metadata, then the files in the tree) is kept.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .. import layout
from .errors import ExportError

#: containers/image refuses lookaside signatures larger than this (``iolimits``); so do we.
MAX_SIGNATURE_SIZE = 4 * 1024 * 1024

#: A lookaside directory: ``<any name>@sha256=<hex>`` (skopeo writes the repository path there).
_LOOKASIDE_DIR_RE = re.compile(r"@sha256=([a-f0-9]{64})\Z")
_SIGNATURE_FILE_RE = re.compile(r"^signature-([1-9][0-9]{0,8})\Z")


def check_signature(data: bytes, where: str) -> bytes:
    """Refuse what no client would accept as a signature file (empty, oversized)."""
    if not data:
        raise ExportError(f"{where}: empty signature")
    if len(data) > MAX_SIGNATURE_SIZE:
        raise ExportError(f"{where}: signature of {len(data)} bytes (at most {MAX_SIGNATURE_SIZE})")
    return data


def read_lookaside(top: str) -> dict[str, list[bytes]]:
    """Every signature of a lookaside store (``skopeo copy --sign-by`` with ``lookaside-staging``).

    Returns manifest digest -> signature files, in ``signature-<n>`` order; the ``<name>`` part of
    the directory is ignored (signatures are matched to manifests by digest). Like a client, reading
    stops at the first gap. The same signature under several names is kept once.
    """
    top = os.path.abspath(top)
    if not os.path.isdir(top):
        raise ExportError(f"signature store {top} is not a directory")
    found: dict[str, list[bytes]] = {}
    for dirpath, dirnames, _filenames in os.walk(top):
        dirnames.sort()
        m = _LOOKASIDE_DIR_RE.search(os.path.basename(dirpath))
        if m is None:
            continue
        dirnames[:] = []  # a signature directory has no subdirectories worth reading
        digest = "sha256:" + m.group(1)
        sigs = found.setdefault(digest, [])
        for n in range(1, 1 << 30):
            path = os.path.join(dirpath, f"{layout.SIGNATURE_PREFIX}{n}")
            try:
                with open(path, "rb") as fh:
                    data = fh.read(MAX_SIGNATURE_SIZE + 1)
            except FileNotFoundError:
                break
            except IsADirectoryError:
                raise ExportError(f"{path} is a directory, not a signature file") from None
            check_signature(data, path)
            if data not in sigs:
                sigs.append(data)
    return {d: s for d, s in found.items() if s}


def previous_signatures(previous: Mapping[str, Any] | None, digest: str) -> list[bytes]:
    """The signatures the previous metadata published for ``digest`` (index order), if readable."""
    entry = ((previous or {}).get("manifests") or {}).get(digest)
    out: list[bytes] = []
    if not isinstance(entry, dict) or not isinstance(entry.get("signatures"), list):
        return out
    for n, sig in enumerate(entry["signatures"], 1):
        if not isinstance(sig, dict) or sig.get("index") != n or not isinstance(sig.get("content"), str):
            break
        try:
            out.append(base64.b64decode(sig["content"], validate=True))
        except (binascii.Error, ValueError):
            break
    return out


def on_disk_signatures(root: str, name: str, digest: str) -> list[bytes]:
    """``signature-1``, ``-2``, … of ``digest`` under ``name`` in the tree, up to the first gap."""
    top = os.path.join(root, layout.signature_dir(name, digest))
    out: list[bytes] = []
    if not os.path.isdir(top):
        return out
    for n in range(1, 1 << 30):
        try:
            with open(os.path.join(top, f"{layout.SIGNATURE_PREFIX}{n}"), "rb") as fh:
                out.append(fh.read(MAX_SIGNATURE_SIZE + 1))
        except FileNotFoundError:
            break
    return out


def merge(published: Sequence[bytes], on_disk: Sequence[bytes], new: Iterable[bytes]) -> list[bytes]:
    """The numbering to publish: what the metadata published keeps its number, then files already
    in the tree beyond that (metadata lost or rewritten), then new signatures not yet numbered.
    """
    result = list(published)
    result.extend(on_disk[len(result) :])
    for sig in new:
        if sig not in result:
            result.append(sig)
    return result


def metadata_entry(sigs: Sequence[bytes]) -> list[dict[str, Any]]:
    """The metadata's ``signatures`` value (docs/layout.md §4.1)."""
    return [{"index": n, "content": base64.b64encode(s).decode("ascii")} for n, s in enumerate(sigs, 1)]
