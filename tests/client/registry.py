"""A real docker-registry with two small images, for syncing a candidate repository into Pulp.

Why here and not in the shared harness: the client tests only need "some registry with two tags";
images are built in Python (an OCI layout) and pushed with skopeo, no daemon involved.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

from tests.harness.ports import free_port


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_oci_layout(layout: Path, tags: list[str]) -> None:
    """An OCI layout with one single-layer linux/amd64 image per tag (each with different content)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for tag in tags:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            content = f"hello from {tag}\n".encode()
            info = tarfile.TarInfo("hello.txt")
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
        diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
        layer = _blob(layout, gzip.compress(raw.getvalue(), mtime=0))
        config = _blob(
            layout,
            json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {"Cmd": ["/hello.txt"]},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                }
            ).encode(),
        )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode()
        desc = _blob(layout, manifest)
        manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **desc,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


class Registry:
    """``docker-registry`` on a free loopback port, storage under ``state``; started and stopped by us."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Registry:
        self.state.mkdir(parents=True, exist_ok=True)
        conf = self.state / "config.yml"
        conf.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.state / 'data'}\nhttp:\n  addr: 127.0.0.1:{self.port}\n"
        )
        log = open(self.state / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        import urllib.request

        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("docker-registry did not start")

    def push(self, layout: Path, name: str, tags: list[str]) -> None:
        """``skopeo copy`` each tag of the OCI layout to ``<registry>/<name>:<tag>``."""
        for tag in tags:
            subprocess.run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--dest-tls-verify=false",
                    f"oci:{layout}:{tag}",
                    f"docker://127.0.0.1:{self.port}/{name}:{tag}",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # our own child
            self.proc.wait(timeout=10)
            self.proc = None
