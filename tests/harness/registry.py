"""docker-registry (Docker Distribution 2.8) with filesystem storage on a free loopback port.

It plays the "candidates" registry Pulp syncs from, and the reference the client tests pull
from directly. With ``tls`` it serves https itself (no nginx needed): skopeo/podman then skip the
10 s plain-HTTP fallback, and dockerd accepts the self-signed cert because 127.0.0.0/8 is an
insecure registry by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.service import LoopbackHTTP, Service
from tests.harness.tls import TLSFiles


class Registry(LoopbackHTTP, Service):
    """``docker-registry serve`` with storage under ``state_dir/storage``.

    Attributes after construction: ``port``, ``host`` (``127.0.0.1:PORT``, what clients use),
    ``url`` (``https://…`` or ``http://…``), ``storage`` (filesystem root).
    """

    name = "registry"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        tls: TLSFiles | None = None,
        port: int | None = None,
        binary: str = "docker-registry",
        delete: bool = True,
    ) -> None:
        super().__init__(state_dir)
        self.tls = tls
        self.port = port or free_port()
        self.binary = binary
        self.delete = delete
        self.storage = self.state_dir / "storage"
        self.config_path = self.state_dir / "config.yml"

    def prepare(self) -> None:
        """Write the registry config (JSON is valid YAML, so no YAML library is needed)."""
        self.storage.mkdir(parents=True, exist_ok=True)
        http_cfg: dict[str, object] = {
            "addr": self.host,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            http_cfg["tls"] = {"certificate": str(self.tls.cert), "key": str(self.tls.key)}
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}, "fields": {"service": "registry"}},
            "storage": {
                "cache": {"blobdescriptor": "inmemory"},
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": self.delete},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_cfg,
        }
        self.config_path.write_text(json.dumps(cfg, indent=2))

    def command(self) -> Sequence[str]:
        return [self.binary, "serve", str(self.config_path)]

    def ready(self) -> bool:
        status, _ = self.request("GET", "/v2/")
        return status == 200

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One HTTP(S) request to the registry (certificate checked against the harness CA)."""
        conn = self.connection(timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def blob_data_path(self, digest: str) -> Path:
        """Where the registry keeps a blob (or manifest) body on disk."""
        algo, hexpart = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"
