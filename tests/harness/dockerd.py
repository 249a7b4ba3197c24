"""dockerd 20.10 for pull tests: vfs storage, no networking, the harness containerd.

Nothing outside the state dir is touched: ``--config-file`` points at an empty ``daemon.json``
(so a machine-wide ``/etc/docker/daemon.json`` cannot leak in), the trust key goes to the state
dir (``deprecated-key-path`` in daemon.json; by default 20.10 writes ``/etc/docker/key.json``),
data/exec roots and the socket are ours, and the ``docker`` CLI gets ``DOCKER_CONFIG`` in the state dir.

TLS: dockerd trusts only ``/etc/docker/certs.d`` (not configurable for root), but every registry
on 127.0.0.0/8 is "insecure" by default, which for https means "accept any certificate". So a
self-signed harness registry on 127.0.0.1 works without touching /etc. ``insecure_registries``
adds other host:port entries (needed for anything not on loopback).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.harness.containerd import Containerd
from tests.harness.service import Service, short_dir


class Dockerd(Service):
    """``dockerd`` bound to a unix socket in the state dir (``host`` = ``unix://…``)."""

    name = "dockerd"
    start_timeout = 60.0

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        containerd: Containerd,
        *,
        insecure_registries: Sequence[str] = (),
        binary: str = "dockerd",
        debug: bool = False,
    ) -> None:
        super().__init__(state_dir)
        self.containerd = containerd
        self.insecure_registries = list(insecure_registries)
        self.binary = binary
        self.debug = debug
        self.sock_dir = short_dir(self.state_dir / "s", 70, "hdkr-")
        self.socket = str(self.sock_dir / "docker.sock")
        self.host = f"unix://{self.socket}"
        self.docker_config = self.state_dir / "client-config"
        self.env = {"DOCKER_CONFIG": str(self.docker_config)}

    def prepare(self) -> None:
        # "deprecated-key-path" (20.10, daemon.json only): else it creates /etc/docker/key.json.
        cfg = {"deprecated-key-path": str(self.state_dir / "key.json")}
        (self.state_dir / "daemon.json").write_text(json.dumps(cfg))
        self.docker_config.mkdir(parents=True, exist_ok=True)

    def command(self) -> Sequence[str]:
        sd = self.state_dir
        argv = [
            self.binary,
            "--config-file", str(sd / "daemon.json"),
            "--data-root", str(sd / "root"),
            "--exec-root", str(self.sock_dir / "exec"),
            "--pidfile", str(sd / "docker.pid"),
            "-H", self.host,
            "--containerd", self.containerd.address,
            "--containerd-namespace", f"moby-{os.getpid()}-{id(self) & 0xFFFF:x}",
            "--containerd-plugins-namespace", f"plugins-{os.getpid()}-{id(self) & 0xFFFF:x}",
            "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
            "--storage-driver=vfs",
            "--userland-proxy=false",
        ]  # fmt: skip
        for r in self.insecure_registries:
            argv += ["--insecure-registry", r]
        if self.debug:
            argv.append("--debug")
        return argv

    def docker(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon (no check; see clients.docker_pull)."""
        return subprocess.run(
            ["docker", "-H", self.host, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "DOCKER_CONFIG": str(self.docker_config)},
        )

    def ready(self) -> bool:
        return (
            Path(self.socket).exists()
            and self.docker("version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0
        )

    def after_stop(self) -> None:
        """Remove a /tmp socket dir fallback."""
        if not str(self.sock_dir).startswith(str(self.state_dir)):
            with contextlib.suppress(OSError):
                shutil.rmtree(self.sock_dir)
