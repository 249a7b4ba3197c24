"""containerd 1.6 with root, state and sockets under the harness state dir.

Used by ``ctr`` pull tests and as dockerd's containerd (dockerd would otherwise start its own
under /var/run). The CRI plugin is disabled: it needs CNI and is irrelevant to pulls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.harness.service import Service, short_dir


class Containerd(Service):
    """``containerd --config <state>/config.toml``; ``address`` is the gRPC socket.

    Sockets go to a short directory when the state dir path is too long for a unix socket.
    """

    name = "containerd"

    def __init__(self, state_dir: str | os.PathLike[str], *, binary: str = "containerd") -> None:
        super().__init__(state_dir)
        self.binary = binary
        self.sock_dir = short_dir(self.state_dir / "s", 80, "hctd-")
        self.address = str(self.sock_dir / "containerd.sock")
        self.config_path = self.state_dir / "config.toml"

    def prepare(self) -> None:
        sd = self.state_dir
        self.config_path.write_text(
            f"""version = 2
root = "{sd}/root"
state = "{self.sock_dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.address}"

[ttrpc]
  address = "{self.address}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{sd}/opt"
"""
        )

    def command(self) -> Sequence[str]:
        return [self.binary, "--config", str(self.config_path)]

    def ready(self) -> bool:
        if not Path(self.address).exists():
            return False
        res = subprocess.run(
            ["ctr", "--address", self.address, "version"], capture_output=True, timeout=5, check=False
        )
        return res.returncode == 0

    def ctr(
        self, *args: str, namespace: str = "default", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr --address <sock> -n <namespace> <args>`` (no check; see clients.ctr_pull)."""
        return subprocess.run(
            ["ctr", "--address", self.address, "-n", namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def after_stop(self) -> None:
        """Remove the socket dir if it was a /tmp fallback (the state dir is the caller's)."""
        if not str(self.sock_dir).startswith(str(self.state_dir)):
            with contextlib.suppress(OSError):
                shutil.rmtree(self.sock_dir)
