"""Helpers of the end-to-end tests: the ``fedora-mirror`` command in a child process, the Pulp
setup every chain starts with, access-log cursors, and small comparisons. Plain functions (no
fixtures) so every test module imports them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.helpers import CLI, PULP_ENV
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles
from tests.pulp.client import PulpApi


def uid(prefix: str) -> str:
    """A name no earlier run on the reused Pulp database has used."""
    return f"{prefix}-{secrets.token_hex(4)}"


# -- the fedora-mirror command line -----------------------------------------------------------


@dataclass
class CliRun:
    """One finished ``fedora-mirror`` invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (the commands' ``--json`` output)."""
        return json.loads(self.stdout)

    def check(self) -> CliRun:
        """Fail the test with the command's own output unless it exited 0."""
        assert self.returncode == 0, (
            f"fedora-mirror {' '.join(self.args)} exited {self.returncode}\n"
            f"stdout: {self.stdout}\nstderr: {self.stderr}"
        )
        return self


def fedora_mirror(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliRun:
    """Run ``fedora-mirror ARGS`` in a child process with a clean HOME and no stray PULP_* env.

    Why a child process and not ``main()`` in-process: Bodhi and admins run the command; its exit
    codes, stdout/stderr split and config lookup are part of what the chain must prove.
    """
    full = {k: v for k, v in os.environ.items() if k not in PULP_ENV}
    full["HOME"] = str(home)
    full.update(env or {})
    proc = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=full, check=False
    )
    return CliRun(list(args), proc.returncode, proc.stdout, proc.stderr)


def admin_cli(pulp: PulpServer, home: Path) -> Callable[..., CliRun]:
    """``fedora-mirror ARGS`` as Pulp's admin with ``home`` as HOME, failing the test unless it exits 0."""
    env = {"PULP_URL": pulp.base_url, "PULP_USERNAME": ADMIN_USER, "PULP_PASSWORD": ADMIN_PASSWORD}

    def cli(*args: str) -> CliRun:
        return fedora_mirror(*args, home=home, env=env).check()

    return cli


# -- the Pulp side of a chain -----------------------------------------------------------------


def export_dirs(pulp: PulpServer, run: str) -> tuple[Path, Path, Path]:
    """(base, tree, metadata) of an export named ``run`` under Pulp's allowed export root."""
    base = pulp.export_root / run
    return base, base / "containers", base / "metadata"


def synced_candidate(
    api: PulpApi, name: str, registry: Registry, upstream: str, tls: TLSFiles, **remote_fields: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(remote, candidate, stable): a remote for ``upstream`` on the candidate registry (over TLS,
    every blob downloaded), ``NAME-candidate`` synced from it in mirror mode, and an empty
    ``NAME-stable`` to promote into, as Fedora's release engineering sets them up."""
    remote = api.ok(
        api.post(
            "remotes/container/container/",
            {
                "name": name,
                "url": registry.url,
                "upstream_name": upstream,
                "policy": "immediate",
                "ca_cert": tls.ca_cert.read_text(),
                **remote_fields,
            },
        ),
        201,
    )
    candidate = api.ok(api.post("repositories/container/container/", {"name": f"{name}-candidate"}), 201)
    api.run(api.post(candidate["pulp_href"] + "sync/", {"remote": remote["pulp_href"], "mirror": True}))
    stable = api.ok(api.post("repositories/container/container/", {"name": f"{name}-stable"}), 201)
    return remote, candidate, stable


def mirror_exporter(
    api: PulpApi, run: str, tree: Path, metadata: Path, master_url: str, **fields: Any
) -> dict[str, Any]:
    """A mirror exporter ``RUN-exporter`` writing ``tree`` and ``metadata``; ``fields``: more settings."""
    body = {
        "name": f"{run}-exporter",
        "path": str(tree),
        "metadata_path": str(metadata),
        "master_url": master_url,
    }
    return api.ok(api.post("exporters/fedora_mirror/mirror/", {**body, **fields}), 201)


# -- access logs ------------------------------------------------------------------------------

#: nginx harness format: ``$remote_addr "$request" $status $body_bytes_sent range=… ua=… rt=…``.
_NGINX_RE = re.compile(r'^\S+ "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')
#: gunicorn's default access format: ``h l u [t] "request" status bytes "referer" "ua"``.
_GUNICORN_RE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')


@dataclass(frozen=True)
class Hit:
    """One access-log line: method, path, status."""

    method: str
    path: str
    status: int


class LogCursor:
    """Reads the lines an access log gained since the cursor was made (or last read).

    Why offsets: services run for the whole session and serve many tests; every assertion about
    "who served what" must look only at the requests of the step it checks.
    """

    def __init__(self, path: Path, *, gunicorn: bool = False) -> None:
        self.path = Path(path)
        self.regex = _GUNICORN_RE if gunicorn else _NGINX_RE
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> list[Hit]:
        """New hits since the last read; advances the cursor."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        # Only whole lines: a line being written right now is read next time.
        end = data.rfind(b"\n") + 1
        self.offset += end
        hits = []
        for line in data[:end].decode(errors="replace").splitlines():
            m = self.regex.search(line)
            if m:
                hits.append(Hit(m["method"], m["path"], int(m["status"])))
        return hits


def blob_hex(path: str) -> str | None:
    """The sha256 hex named by a tree path (``…/blobs/sha256/ab/<hex>``) or a registry path
    (``…/blobs/sha256:<hex>``), else None."""
    m = re.search(r"/blobs/sha256[:/](?:[0-9a-f]{2}/)?([0-9a-f]{64})(?:$|\?)", path)
    return m[1] if m else None


def hexes(digests: Any) -> set[str]:
    """``{"sha256:<hex>", …}`` → ``{"<hex>", …}``."""
    return {d.split(":", 1)[1] for d in digests}


def dir_layout_files(path: Path) -> dict[str, bytes]:
    """A skopeo ``dir:`` layout as ``{file name: bytes}`` (its ``version`` marker left out)."""
    return {p.name: p.read_bytes() for p in sorted(Path(path).iterdir()) if p.name != "version"}


def filelist_files(root: Path, module: str = "containers") -> dict[str, int]:
    """The regular files ``ROOT/fullfiletimelist-<module>`` lists: ``{relative path: size}``."""
    text = (Path(root) / f"fullfiletimelist-{module}").read_text()
    files: dict[str, int] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("["):
            section = line
            continue
        if section == "[Files]" and line:
            _ts, kind, size, path = line.split("\t", 3)
            if kind.startswith("f"):
                files[path] = int(size)
    return files


def sync_mirror(master: Path, mirror: Path, module: str = "containers") -> list[str]:
    """One quick-fedora-mirror run: fetch the master's file list and copy every listed file the
    mirror lacks (or holds at another size), then the list itself; never delete. Returns the
    paths copied.

    Why by the list and not a plain tree copy: that is how Fedora mirrors sync, so a pull that
    works after this proves the exporter's file list names everything crane can redirect to.
    """
    copied = []
    for rel, size in sorted(filelist_files(master, module).items()):
        dst = Path(mirror) / rel
        if dst.exists() and dst.stat().st_size == size:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(master) / rel, dst)
        copied.append(rel)
    name = f"fullfiletimelist-{module}"
    Path(mirror).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(master) / name, Path(mirror) / name)
    return copied
