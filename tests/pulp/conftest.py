"""Session fixtures: one real Pulp, one docker-registry with the fixture images, one synced repo.

Pulp's state lives in ``$PULP_TEST_STATE_DIR`` (default ``.state/pulp-tests`` in the checkout), so
a second run reuses the migrated database and starts in a few seconds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulpcore", reason="needs the [pulp] extra (pulpcore, pulp-container)")

from fixtures.build_images import FixtureImage, build_images
from fixtures.push import push_fixtures
from tests.harness.postgres import free_port
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.pulp.client import PulpApi

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORTERS = "exporters/fedora_mirror/mirror/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here needs the real Pulp: mark it so ``-m 'not pulp'`` skips the lot."""
    for item in items:
        if "tests/pulp/" in str(item.fspath):
            item.add_marker(pytest.mark.pulp)


@pytest.fixture(scope="session")
def state_dir() -> Path:
    d = Path(os.environ.get("PULP_TEST_STATE_DIR", REPO_ROOT / ".state" / "pulp-tests")).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def pulp(state_dir: Path) -> Iterator[PulpServer]:
    """A running Pulp with this checkout's plugin (started once per session)."""
    server = PulpServer(state_dir / "pulp")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api(pulp: PulpServer) -> PulpApi:
    """Admin REST client."""
    return PulpApi(pulp.base_url, ADMIN_USER, ADMIN_PASSWORD)


def uid(prefix: str = "t") -> str:
    """A name no other test (or earlier run on the reused DB) has used."""
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def export_dirs(pulp: PulpServer) -> tuple[Path, Path]:
    """Fresh (tree, metadata) directories inside ALLOWED_EXPORT_PATHS."""
    base = pulp.export_root / uid("x")
    tree, meta = base / "containers", base / "metadata"
    tree.mkdir(parents=True)
    meta.mkdir(parents=True)
    return tree, meta


@pytest.fixture
def make_exporter(api: PulpApi, export_dirs: tuple[Path, Path]) -> Iterator[Any]:
    """Factory creating exporters (admin) with sane defaults; deleted after the test."""
    created: list[str] = []

    def make(**overrides: Any) -> dict[str, Any]:
        tree, meta = export_dirs
        body = {
            "name": uid("exp"),
            "path": str(tree),
            "metadata_path": str(meta),
            "master_url": "https://dl.example.org/pub/containers/",
            "mirror_url": "https://download.example.org/pub/containers/",
        }
        body.update(overrides)
        exporter = api.ok(api.post(EXPORTERS, body), 201)
        created.append(exporter["pulp_href"])
        return exporter

    yield make
    for href in created:
        resp = api.delete(href)
        if resp.status_code == 202:
            api.wait_task(resp.json()["task"], check=False)


# -- registry with the fixture images ---------------------------------------------------------


@dataclass
class Registry:
    """A docker-registry on loopback holding the fixture images under ``test/<name>``."""

    url: str
    images: dict[str, FixtureImage]


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited rc {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry not listening on {port} after {timeout} s; see {log}")


@pytest.fixture(scope="session")
def registry(state_dir: Path) -> Iterator[Registry]:
    """docker-registry (Debian's Distribution 2.8) on a free port, fixture images pushed.

    (tests/harness/registry.py from the harness branch will replace this once it lands.)
    """
    binary = shutil.which("docker-registry")
    if binary is None or shutil.which("skopeo") is None:
        pytest.skip("needs docker-registry and skopeo (apt-get install docker-registry skopeo)")
    root = state_dir / f"registry-{secrets.token_hex(3)}"
    (root / "storage").mkdir(parents=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, fields: {service: registry}}\n"
        "storage:\n"
        "  cache: {blobdescriptor: inmemory}\n"
        f"  filesystem: {{rootdirectory: {root / 'storage'}}}\n"
        "  delete: {enabled: true}\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        "  headers: {X-Content-Type-Options: [nosniff]}\n"
    )
    log = root / "registry.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_port(port, proc, log)
        images = build_images(root / "images")
        push_fixtures(images, f"127.0.0.1:{port}", scheme="http")
        yield Registry(url=f"http://127.0.0.1:{port}", images=images)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SyncedRepo:
    """A container repository synced (policy immediate) from the fixture registry."""

    href: str
    name: str
    version_href: str
    image: FixtureImage


def sync_repo(api: PulpApi, registry: Registry, image: str, policy: str = "immediate") -> SyncedRepo:
    """Remote + repository + sync of ``test/<image>``; returns the new version."""
    name = uid(image)
    remote = api.ok(
        api.post(
            "remotes/container/container/",
            {
                "name": name,
                "url": registry.url,
                "upstream_name": f"test/{image}",
                "policy": policy,
            },
        ),
        201,
    )
    repo = api.ok(api.post("repositories/container/container/", {"name": name}), 201)
    api.run(api.post(repo["pulp_href"] + "sync/", {"remote": remote["pulp_href"], "mirror": True}))
    repo = api.ok(api.get(repo["pulp_href"]), 200)
    return SyncedRepo(repo["pulp_href"], name, repo["latest_version_href"], registry.images[image])


@pytest.fixture(scope="session")
def synced_repo(api: PulpApi, registry: Registry) -> SyncedRepo:
    """``test/multi-oci`` (OCI index with amd64, arm64 and an attestation child) in Pulp."""
    return sync_repo(api, registry, "multi-oci")
