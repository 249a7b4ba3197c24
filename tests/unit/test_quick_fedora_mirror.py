"""The stock quick-fedora-mirror client against a real ``rsync --daemon`` serving our tree.

Issue 13 item 1: with only ``fullfiletimelist-<module>`` in the tree, every run of the stock
client failed (its default ``EXTRAFILES`` also fetch ``fullfilelist`` and ``imagelist-<module>``),
so mirrors never synced and never deleted. Here the upstream script (run from ``shared/tools``,
never copied into the project) syncs an exported tree: initial sync, unchanged run (skipped by
the list checksum), incremental export, prune. Its configuration is the stock one plus what a
mirror admin must set for any module (``DESTD``, ``TIMEFILE``, ``REMOTE``, the module mappings)
and ``MAXRETRIES=1`` so that a failure fails in seconds rather than after ~17 minutes of retries.
"""

from __future__ import annotations

import base64
import bz2
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export import filelist
from pulp_fedora_mirror.export.prune import prune
from pulp_fedora_mirror.export.verify import verify
from tests.harness.ports import LOOPBACK, free_port

from .conftest import Env
from .ocibuild import standard_layout

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_KEY = "fedora-containers"  # the client's name for the module (MODULES, *MAPPING keys)
MODULE_DIR = "containers"  # the directory under the rsync module = basename of ROOT
CATEGORY = "Fedora Containers"  # the MirrorManager category name


def _find_client() -> Path | None:
    """``../shared/tools/quick-fedora-mirror`` beside the clone (CI), or beside the main
    checkout when this is a git worktree (its ``..`` is the worktrees' directory)."""
    candidates = [REPO_ROOT.parent / "shared"]
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        if common:
            candidates.append(Path(common).parent.parent / "shared")
    except (OSError, subprocess.SubprocessError):
        pass
    for shared in candidates:
        script = shared / "tools" / "quick-fedora-mirror"
        if script.is_file():
            return script
    return None


CLIENT = _find_client()


def _tree(top: Path) -> dict[str, tuple[int, bytes]]:
    """Relative path -> (mode bits, content) of every non-dot file under ``top``."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fn in filenames:
            if fn.startswith("."):
                continue
            full = os.path.join(dirpath, fn)
            out[os.path.relpath(full, top)] = (os.stat(full).st_mode & 0o777, Path(full).read_bytes())
    return out


class Mirror:
    """A world-readable work area: ``pub/containers`` (ROOT) behind rsyncd, ``mirror/`` (DESTD)."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.pub = top / "pub"
        self.root = self.pub / MODULE_DIR
        self.dest = top / "mirror"
        self.tmp = top / "tmp"
        for d in (self.pub, self.dest, self.tmp, top / "state"):
            d.mkdir(mode=0o755)
        self.port = free_port()
        conf = top / "rsyncd.conf"
        conf.write_text(
            f"pid file = {top}/rsyncd.pid\nlog file = {top}/rsyncd.log\nuse chroot = no\n"
            f"[pub]\n    path = {self.pub}\n    read only = yes\n"
        )
        self.daemon = subprocess.Popen(
            [
                "rsync",
                "--daemon",
                "--no-detach",
                f"--config={conf}",
                f"--port={self.port}",
                f"--address={LOOPBACK}",
            ]
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                break
            except OSError:
                assert self.daemon.poll() is None, "rsync --daemon exited"
                assert time.monotonic() < deadline, "rsync --daemon did not listen"
                time.sleep(0.05)
        self.config = top / "quick-fedora-mirror.conf"
        self.config.write_text(
            f"DESTD={self.dest}\n"
            f"TIMEFILE={top}/state/timefile\n"
            f"REMOTE=rsync://{LOOPBACK}:{self.port}\n"
            "MASTERMODULE=pub\n"
            f"MODULEMAPPING[{MODULE_KEY}]={MODULE_DIR}\n"
            f"MIRRORMANAGERMAPPING[{MODULE_KEY}]='{CATEGORY}'\n"
            f"MIRRORMANAGERMODULEMAPPING[{MODULE_KEY}]={MODULE_DIR}\n"
            f"MODULES=({MODULE_KEY})\n"
            "MAXRETRIES=1\n"
        )

    def run(self) -> subprocess.CompletedProcess[str]:
        """One client run (``-d 2``: it says what it skips), checkin payload dumped, not sent."""
        assert CLIENT is not None
        return subprocess.run(
            [
                "zsh",
                str(CLIENT),
                "-c",
                str(self.config),
                "-d",
                "2",
                "--dump-mm-checkin",
                str(self.top / "mm"),
            ],
            cwd=CLIENT.parent,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR": str(self.tmp), "HOME": str(self.top)},
            timeout=600,
        )

    def checkin(self) -> dict:
        """The MirrorManager payload the client would have sent (XML-RPC → base64 → bzip2 → JSON)."""
        xml = (self.top / f"mm-{MODULE_KEY}").read_text()
        encoded = re.search(r"<string>(.*)</string>", xml, re.S).group(1).strip()  # type: ignore[union-attr]
        raw = base64.b64decode(encoded.translate(str.maketrans("-_", "+/")))
        return json.loads(bz2.decompress(raw))

    def close(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(timeout=30)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    if CLIENT is None:
        pytest.skip("../shared/tools/quick-fedora-mirror not found beside the repository")
    for tool in ("zsh", "rsync", "bzip2"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Makefile DEB_PACKAGES)")
    top = Path(tempfile.mkdtemp(prefix="qfm-"))
    top.chmod(0o755)  # the daemon reads as "nobody" when started by root
    m = Mirror(top)
    try:
        yield m
    finally:
        m.close()
        shutil.rmtree(top)


def _export(m: Mirror, layout_dir: str) -> Env:
    env = Env(m.top, layout_dir, str(m.root), str(m.top / "meta"), {})
    env.export()
    return env


def test_stock_client_initial_unchanged_incremental_prune(mirror: Mirror) -> None:
    # -- initial sync -------------------------------------------------------------------------
    first = str(mirror.top / "layout-a")
    standard_layout(first)
    env = _export(mirror, first)
    r = mirror.run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert _tree(mirror.dest / MODULE_DIR) == _tree(mirror.root)
    for name in ("fullfiletimelist-containers", "fullfilelist", "imagelist-containers"):
        assert (mirror.dest / MODULE_DIR / name).is_file()
    payload = mirror.checkin()  # the documented mappings give a usable check-in
    dirs = set(payload[CATEGORY]["dirtree"])
    assert {"", "blobs", "blobs/sha256", "manifests", "manifests/sha256"} <= dirs
    assert not [d for d in dirs if d.startswith(MODULE_DIR + "/")]
    timefile = (mirror.top / "state" / "timefile").read_text()
    assert timefile.startswith("LASTTIME=")

    # -- unchanged: skipped by the list checksum, nothing transferred ------------------------
    before = os.stat(mirror.root / "fullfiletimelist-containers").st_mtime_ns
    r = mirror.run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No change in file list checksum. Skipping fedora-containers." in r.stdout
    assert "No changed files." in r.stdout
    assert os.stat(mirror.root / "fullfiletimelist-containers").st_mtime_ns == before

    # -- incremental: a second repository adds files, only they are copied --------------------
    second = str(mirror.top / "layout-b")
    standard_layout(second, seed="b")
    env_b = Env(mirror.top, second, str(mirror.root), str(mirror.top / "meta"), {})
    env_b.export(name="fedora/other")
    old = {p for p in _tree(mirror.dest / MODULE_DIR) if p.startswith(("blobs/", "manifests/"))}
    inodes = {p: os.stat(mirror.dest / MODULE_DIR / p).st_ino for p in old}
    added = set(_tree(mirror.root)) - set(_tree(mirror.dest / MODULE_DIR))
    assert len(added) > 10
    r = mirror.run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert _tree(mirror.dest / MODULE_DIR) == _tree(mirror.root)
    # what the mirror had is left alone (rsync --delay-updates would have replaced the inode)
    assert {p: os.stat(mirror.dest / MODULE_DIR / p).st_ino for p in old} == inodes

    # -- prune: the second repository goes; once prune deletes its files, so does the client --
    os.unlink(os.path.join(env_b.meta, layout.metadata_relpath("fedora/other")))
    gone = set(_tree(mirror.root))
    prune(str(mirror.root), env.meta, 0)
    gone -= set(_tree(mirror.root))
    assert {p for p in gone if p.startswith("blobs/")} and not [
        p for p in gone if not p.startswith(("blobs/", "manifests/"))
    ]
    assert verify(str(mirror.root), env.meta).ok  # verify is happy with the three lists
    r = mirror.run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert _tree(mirror.dest / MODULE_DIR) == _tree(mirror.root)
    assert not [p for p in gone if (mirror.dest / MODULE_DIR / p).exists()]


def test_lists_follow_create_filelist(tmp_path: Path) -> None:
    """Same entries and order in all three lists; written only when changed; time list last."""
    env = Env(tmp_path, str(tmp_path / "layout"), str(tmp_path / "containers"), str(tmp_path / "meta"), {})
    standard_layout(env.layout)
    env.export()
    root = Path(env.root)
    timelist = (root / "fullfiletimelist-containers").read_text().splitlines()
    files_section = timelist[timelist.index("[Files]") + 1 : timelist.index("[Checksums SHA1]") - 1]
    plain = (root / "fullfilelist").read_text().splitlines()
    assert plain == ["./" + ln.split("\t")[3] for ln in files_section]
    assert plain.index("./blobs/sha256") < plain.index("./blobs")  # contents before the directory
    assert (root / "imagelist-containers").read_bytes() == b""  # no image suffix in our tree
    # create-filelist -i picks productmd image suffixes; anything else stays out
    (root / "extra").mkdir(mode=0o755)
    for name in ("disk.qcow2", "x.iso", "signature-1"):
        (root / "extra" / name).write_bytes(b"x")
        os.chmod(root / "extra" / name, 0o644)
    written = filelist.write_lists(env.root, "containers")
    assert written == ["fullfilelist", "imagelist-containers", "fullfiletimelist-containers"]
    assert (root / "imagelist-containers").read_text().splitlines() == ["./extra/disk.qcow2", "./extra/x.iso"]
    assert filelist.write_lists(env.root, "containers") == []  # unchanged: nothing written
