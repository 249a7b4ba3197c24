"""One writer per tree, and progress output on a real terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import time
from pathlib import Path

from .conftest import CLI, Env, run_cli


def _waits_for_a_flock(pid: int) -> bool:
    """True if /proc/locks shows ``pid`` blocked on a flock (a ``->`` waiter line)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[2] == "FLOCK" and fields[5] == str(pid):
            return True
    return False


def test_second_writer_waits_for_the_tree_lock(env: Env) -> None:
    os.makedirs(env.root)
    fd = os.open(env.root, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running exporter or prune holds
    try:
        p = subprocess.Popen([*CLI, *env.cli_args(), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The event to wait for: the kernel lists the exporter as a blocked waiter on the flock.
        deadline = time.monotonic() + 60
        while not _waits_for_a_flock(p.pid):
            assert p.poll() is None, "export ran while the tree was locked"
            assert time.monotonic() < deadline, "the exporter never blocked on the tree lock"
            time.sleep(0.02)
        assert p.poll() is None, "export ran while the tree was locked"
        assert not os.listdir(env.root)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert p.wait(timeout=60) == 0
    assert os.path.exists(os.path.join(env.root, "fullfiletimelist-containers"))


def test_progress_bar_on_a_terminal(env: Env) -> None:
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([*CLI, *env.cli_args()], stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out, _ = p.communicate(timeout=60)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    err = b"".join(chunks).decode()
    assert p.returncode == 0
    assert "\r" in err and "[" + "#" * 30 + "] 20/20" in err  # redrawn bar, full at the end
    assert b"exported fedora/busybox" in out


def test_verify_and_prune_missing_root(tmp_path) -> None:
    r = run_cli("verify", str(tmp_path / "nope"))
    assert r.returncode == 1 and r.stderr.strip() == f"fedora-mirror: {tmp_path / 'nope'} is not a directory"
    r = run_cli("prune", str(tmp_path / "nope"), "--metadata-dir", str(tmp_path), "--grace", "1d")
    assert r.returncode == 1 and "is not a directory" in r.stderr and "Traceback" not in r.stderr
