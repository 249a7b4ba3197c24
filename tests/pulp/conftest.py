"""Session fixtures: one real Pulp, one docker-registry with the fixture images, one synced repo.

Pulp's state lives in ``$PULP_TEST_STATE_DIR`` (default ``.state/pulp-tests`` in the checkout), so
a second run reuses the migrated database and starts in a few seconds.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulpcore", reason="needs the [pulp] extra (pulpcore, pulp-container)")

from fixtures.build_images import FixtureImage, build_images
from fixtures.push import push_fixtures
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.harness.registry import Registry as HarnessRegistry
from tests.pulp.client import PulpApi

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPORTERS = "exporters/fedora_mirror/mirror/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here needs the real Pulp: mark it so ``-m 'not pulp'`` skips the lot."""
    for item in items:
        if "tests/pulp/" in str(item.fspath):
            item.add_marker(pytest.mark.pulp)


def pulp_state_dir() -> Path:
    d = Path(os.environ.get("PULP_TEST_STATE_DIR", REPO_ROOT / ".state" / "pulp-tests")).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return pulp_state_dir()


def notify_config_path(state_dir: Path) -> Path:
    """Where the session Pulp looks for its notification (broker) settings."""
    return state_dir / "notify.toml"


def start_session_pulp() -> PulpServer:
    """Start the session's Pulp (tests/conftest.py's ``pulp_server``) with this checkout's plugin."""
    state_dir = pulp_state_dir()
    # Notifications read their broker settings from this file at every export (tests/pulp/
    # test_notify.py writes it); while it is absent they are off.
    server = PulpServer(
        state_dir / "pulp",
        extra_settings={
            "FEDORA_MIRROR_NOTIFY": {"config_file": str(notify_config_path(state_dir)), "retry_interval": 1}
        },
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def pulp(pulp_server: PulpServer) -> PulpServer:
    """The session's one running Pulp (shared with tests/client)."""
    return pulp_server


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


@pytest.fixture(scope="session")
def registry(state_dir: Path) -> Iterator[Registry]:
    """docker-registry (Debian's Distribution 2.8, plain http) on a free port, fixtures pushed.

    Plain http: Pulp syncs from it without CA setup, and skopeo's https-then-http fallback is
    immediate against docker-registry (the 10 s penalty is gunicorn-only).
    """
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None:
        pytest.skip("needs docker-registry and skopeo (apt-get install docker-registry skopeo)")
    root = state_dir / f"registry-{secrets.token_hex(3)}"
    service = HarnessRegistry(root / "registry")
    service.start()
    try:
        images = build_images(root / "images")
        push_fixtures(images, service.host, scheme="http")
        yield Registry(url=service.url, images=images)
    finally:
        service.stop()
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
