"""A real Pulp for the client tests (``@pytest.mark.pulp``), and a registry to sync from.

Where the Pulp comes from: ``PULP_TEST_URL`` (+ ``PULP_TEST_USERNAME``/``PULP_TEST_PASSWORD``,
default admin/password) names an already running Pulp; otherwise the session's one Pulp
(``pulp_server`` in tests/conftest.py, shared with tests/pulp) with this checkout's plugin.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.build_images import build_images
from fixtures.push import push_image
from pulp_fedora_mirror.client import PulpClient, PulpConfig
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER
from tests.harness.registry import Registry as HarnessRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PulpService:
    base_url: str
    username: str = "admin"
    password: str = "password"
    #: A directory the Pulp's ALLOWED_EXPORT_PATHS permits (for fedora_mirror exporters), if known.
    export_dir: str | None = None

    def client(self, **overrides: Any) -> PulpClient:
        data = {"base_url": self.base_url, "username": self.username, "password": self.password}
        data.update(overrides)
        return PulpClient(PulpConfig(**data))


@pytest.fixture(scope="session")
def pulp(request: pytest.FixtureRequest) -> PulpService:
    """A running Pulp (see the module docstring)."""
    url = os.environ.get("PULP_TEST_URL")
    if url:
        return PulpService(
            base_url=url,
            username=os.environ.get("PULP_TEST_USERNAME", "admin"),
            password=os.environ.get("PULP_TEST_PASSWORD", "password"),
            export_dir=os.environ.get("PULP_TEST_EXPORT_DIR"),
        )
    server = request.getfixturevalue("pulp_server")
    return PulpService(
        base_url=server.base_url,
        username=ADMIN_USER,
        password=ADMIN_PASSWORD,
        export_dir=str(server.export_root),
    )


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarnessRegistry]:
    """docker-registry with ``demo/hello:latest`` (an OCI image) and ``demo/hello:v2`` (Docker)."""
    base = tmp_path_factory.mktemp("registry")
    images = build_images(base / "images")
    with HarnessRegistry(base / "registry") as reg:
        push_image(images["single-oci"], reg.host, repository="demo/hello", tag="latest")
        push_image(images["single-docker"], reg.host, repository="demo/hello", tag="v2")
        yield reg


@pytest.fixture(scope="session")
def candidate(pulp: PulpService, registry: HarnessRegistry) -> dict[str, Any]:
    """A container repository synced (immediate) from the registry: the promotion source."""
    c = pulp.client()
    suffix = uuid.uuid4().hex[:8]
    remote = c.request(
        "POST",
        "remotes/container/container/",
        json={
            "name": f"cand-{suffix}",
            "url": registry.url,
            "upstream_name": "demo/hello",
            "policy": "immediate",
        },
    )
    repo = c.request("POST", "repositories/container/container/", json={"name": f"cand-{suffix}"})
    task = c.request(
        "POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"], "mirror": False}
    )
    c.wait(task["task"], timeout=120)
    return c.request("GET", repo["pulp_href"])


@pytest.fixture
def stable(pulp: PulpService) -> dict[str, Any]:
    """An empty container repository: the promotion target."""
    return pulp.client().request(
        "POST", "repositories/container/container/", json={"name": f"stable-{uuid.uuid4().hex[:8]}"}
    )
