"""Fixtures for the export core tests: real OCI layouts, real trees, real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.ocilayout import read_oci_layout
from pulp_fedora_mirror.export.source import ExportSummary, ExportTarget

from .ocibuild import standard_layout

MASTER = "https://dl.example.org/pub/containers/"
MIRROR = "https://download.example.org/pub/containers/"
CLI = [sys.executable, "-c", "import sys; from pulp_fedora_mirror.cli import main; sys.exit(main())"]
#: The same CLI with test points on (stops at each; see testpoint_runner.py).
PAUSING_CLI = [sys.executable, str(Path(__file__).with_name("testpoint_runner.py"))]


@dataclass
class Env:
    tmp: Path
    layout: str
    root: str
    meta: str
    descs: dict[str, dict[str, Any]]

    def target(self, **kw: Any) -> ExportTarget:
        kw.setdefault("mirror_url", MIRROR)
        return ExportTarget(root=self.root, metadata_dir=self.meta, master_url=MASTER, **kw)

    def export(self, layout: str | None = None, name: str = "fedora/busybox", **kw: Any) -> ExportSummary:
        now = kw.pop("now", None)
        repo = read_oci_layout(layout or self.layout, name)
        return export_repository(repo, self.target(**kw), now=now)

    def cli_args(self, layout: str | None = None, name: str = "fedora/busybox") -> list[str]:
        return [
            "export",
            layout or self.layout,
            "--name",
            name,
            "--root",
            self.root,
            "--metadata-dir",
            self.meta,
            "--master-url",
            MASTER,
            "--mirror-url",
            MIRROR,
        ]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    layout = str(tmp_path / "layout")
    descs = standard_layout(layout)
    return Env(tmp_path, layout, str(tmp_path / "containers"), str(tmp_path / "meta"), descs)


def snapshot(*tops: str) -> dict[str, tuple[int, ...]]:
    """Every entry under ``tops`` with inode, mode, size, mtime_ns and ctime_ns (nothing may move)."""
    snap: dict[str, tuple[int, ...]] = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames, ""]:
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                snap[p] = (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return snap


def wait_for_clock_past(snap: dict[str, tuple[int, ...]], probe_dir: str | os.PathLike) -> None:
    """Return once a new file in ``probe_dir`` gets a timestamp later than every mtime and ctime in
    ``snap``: from then on any write to a snapshotted entry shows as a changed timestamp."""
    newest = max(max(v[3], v[4]) for v in snap.values())
    probe = os.path.join(probe_dir, ".clock-probe")
    while True:
        with open(probe, "w"):
            pass
        stamp = os.stat(probe).st_mtime_ns
        os.unlink(probe)
        if stamp > newest:
            return
        time.sleep(0.001)


def run_cli(*args: str, env_extra: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120, **kw)


class Paused:
    """An export in a subprocess that stops itself at every test point (testpoint_runner.py)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [*PAUSING_CLI, str(log), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.labels: list[str] = []
        self.status: int | None = None

    def next_stop(self) -> str | None:
        """Wait for the next stop; its label, or None once the process exited."""
        _pid, status = os.waitpid(self.proc.pid, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            self.labels = self.log.read_text().splitlines()
            return self.labels[-1]
        self.status = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.status
        return None

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        os.kill(self.proc.pid, signal.SIGCONT)
        _pid, status = os.waitpid(self.proc.pid, 0)
        self.status = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.status
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def paused(tmp_path: Path) -> Callable[[list[str]], Paused]:
    started: list[Paused] = []

    def start(args: list[str]) -> Paused:
        p = Paused(args, tmp_path / f"testpoints-{len(started)}.log")
        started.append(p)
        return p

    yield start
    for p in started:
        if p.status is None:
            p.kill()
