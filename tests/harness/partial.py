"""podman's partial pulls (zstd:chunked) and what the mirror nginx saw of them.

Why a module: the client tests (``tests/clients/test_zstd.py``) and the end-to-end chain through
Pulp (``tests/e2e/test_zstd.py``) pull the same way and read the same access-log lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tests.harness import clients

#: podman's storage.conf for partial pulls (containers-storage.conf(5) of c/storage 1.43, the
#: version podman 4.3 vendors). It must name graphroot and runroot ("runroot must be set"), even
#: though the harness's ``--root``/``--runroot`` options win over them. Partial pulls need the
#: overlay driver; with vfs podman pulls every layer whole.
STORAGE_CONF = """[storage]
driver = "overlay"
graphroot = "{root}"
runroot = "{root}-run"
[storage.options]
pull_options = {{enable_partial_images = "true", use_hard_links = "false", ostree_repos = ""}}
"""
#: A blob GET in the harness nginx format (tests/harness/nginx.py ``log_format harness``).
_LOG_RE = re.compile(r'"GET \S*/blobs/sha256/../([0-9a-f]{64}) HTTP/[\d.]+" (\d{3}) (\d+) range="([^"]*)"')


@dataclass(frozen=True)
class Fetch:
    """One blob GET nginx answered: status, bytes sent and the ``Range`` header's ranges."""

    hex: str
    status: int
    sent: int
    ranges: tuple[tuple[int, int], ...]


def log_lines(log: Path) -> int:
    """Lines in ``log`` so far (pass to :func:`fetches` as ``since``)."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def fetches(log: Path, since: int = 0) -> list[Fetch]:
    """Blob GETs in the nginx access ``log`` from line ``since`` on."""
    out = []
    for line in log.read_text().splitlines()[since:]:
        m = _LOG_RE.search(line)
        if m:
            spec = m.group(4)
            ranges: tuple[tuple[int, int], ...] = ()
            if spec.startswith("bytes="):
                ranges = tuple((int(a), int(b)) for a, b in (r.split("-", 1) for r in spec[6:].split(",")))
            out.append(Fetch(m.group(1), int(m.group(2)), int(m.group(3)), ranges))
    return out


def podman_partial_pull(ref: str, *, root: Path, cert_dir: str | os.PathLike[str]) -> clients.PullResult:
    """``podman pull`` into the overlay store ``root`` with partial pulls enabled, at debug log
    level (``stderr`` says "Retrieved partial blob <digest>" for each layer pulled partially)."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root.parent / f"{root.name}-storage.conf"
    conf.write_text(STORAGE_CONF.format(root=root))
    return clients.podman_pull(
        ref, root=root, cert_dir=cert_dir, storage_driver="overlay", storage_conf=conf, log_level="debug"
    )


def top_layer_files(ref: str, *, root: Path, under: str) -> dict[str, bytes]:
    """``{name: bytes}`` of the files in directory ``under`` of the pulled image's top layer, read
    from podman's overlay store (no mount needed)."""
    upper = clients.podman_image_inspect(
        ref, "{{.GraphDriver.Data.UpperDir}}", root=root, storage_driver="overlay"
    )
    return {p.name: p.read_bytes() for p in (Path(upper) / under).iterdir()}
