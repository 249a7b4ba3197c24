"""An unreadable data_dir (or a directory under it) keeps the last good repositories (issue 13 item 2).

Why a subprocess: the suite runs as root, and ``chmod 000`` does nothing to root. The app runs in
a real Python process switched to ``nobody`` with ``setpriv``; the test (root) changes the modes
between the steps it asks that process to take. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .builder import Native

NOBODY = 65534

DRIVER = r"""
import json, logging, sys
from crane_fedora.app import create_app
from crane_fedora.config import parse_config

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.levelname, record.getMessage()))
logging.getLogger("crane_fedora").addHandler(Keep())
logging.getLogger("crane_fedora").setLevel(logging.INFO)

data_dir = sys.argv[1]
app = create_app(parse_config(f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 0\n"))
client = app.test_client()
store = app.extensions["crane_fedora"].store
for line in sys.stdin:
    records.clear()
    store.refresh()
    health = client.get("/healthz")
    out = {
        "a": client.get("/v2/top/a/manifests/x").status_code,
        "b": client.get("/v2/sub/b/manifests/x").status_code,
        "health": [health.status_code, health.json],
        "logs": [m for level, m in records if level in ("ERROR", "WARNING")],
    }
    print(json.dumps(out), flush=True)
"""


def _small(name: str) -> Native:
    n = Native(name)
    n.tag("x", n.image(name))
    return n


class Nobody:
    """The app in a process running as ``nobody``; ``step()`` = refresh + a few requests."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(HOME="/nonexistent", PYTHONDONTWRITEBYTECODE="1")
        cmd = [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--",
            sys.executable,
            "-c",
            DRIVER,
            str(data_dir),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/"
        )

    def step(self) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "driver died"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """pytest's tmp_path is 0700 root: ``nobody`` needs a directory it can reach."""
    top = Path(tempfile.mkdtemp(prefix="crane-unreadable-"))
    top.chmod(0o755)
    yield top
    for dirpath, dirnames, _files in os.walk(top):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(top)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.skipif(os.geteuid() != 0, reason="switches to nobody: needs root")
def test_unreadable_directories_keep_last_good_repositories(world_readable_dir: Path) -> None:
    data_dir = world_readable_dir / "metadata"
    _small("top/a").write(data_dir)
    _small("sub/b").write(data_dir)
    for dirpath, _dirnames, filenames in os.walk(data_dir):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    crane = Nobody(data_dir)
    try:
        s = crane.step()
        assert (s["a"], s["b"], s["health"][0], s["health"][1]["status"]) == (200, 200, 200, "ok")

        # a subdirectory turns unreadable: its repository stays, /healthz says so, one error
        (data_dir / "sub").chmod(0)
        s = crane.step()
        assert (s["a"], s["b"]) == (200, 200)
        assert s["health"][0] == 503 and s["health"][1]["status"] == "unreadable"
        assert s["health"][1]["unreadable"] == [{"path": "sub", "error": "Permission denied"}]
        assert s["health"][1]["repositories"] == 2
        assert len(s["logs"]) == 1 and "sub" in s["logs"][0] and "cannot be read" in s["logs"][0]
        s = crane.step()  # the same state again: nothing new logged
        assert (s["b"], s["health"][0], s["logs"]) == (200, 503, [])

        # readable again: healthy, one line saying so, and changes are seen again
        (data_dir / "sub").chmod(0o755)
        s = crane.step()
        assert (s["a"], s["b"], s["health"][0]) == (200, 200, 200)
        assert "unreadable" not in s["health"][1]
        assert len(s["logs"]) == 1 and "readable again" in s["logs"][0]
        (data_dir / "sub" / "b.json").unlink()
        s = crane.step()
        assert (s["b"], s["health"][0]) == (404, 200)  # a real removal still removes

        # data_dir itself turns unreadable: everything stays
        data_dir.chmod(0)
        s = crane.step()
        assert (s["a"], s["health"][0]) == (200, 503)
        assert s["health"][1]["unreadable"][0]["path"] == "."
        data_dir.chmod(0o755)
        s = crane.step()
        assert (s["a"], s["health"][0], s["health"][1]["status"]) == (200, 200, "ok")
    finally:
        crane.close()
