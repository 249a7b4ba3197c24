"""A real Pulp for the client tests (``@pytest.mark.pulp``), and a registry to sync from.

Where the Pulp comes from, in order:

1. ``PULP_TEST_URL`` (+ ``PULP_TEST_USERNAME``/``PULP_TEST_PASSWORD``, default admin/password):
   an already running Pulp (pulpcore + pulp-container, with or without pulp_fedora_mirror).
2. ``tests.harness.pulp.PulpServer``, started for the session with this checkout's plugin.

Without either the Pulp tests skip, which ``CI=true`` turns into a failure: in CI they must run.
"""

from __future__ import annotations

import importlib
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
from tests.harness.registry import Registry as HarnessRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PulpService:
    base_url: str
    username: str = "admin"
    password: str = "password"
    #: A directory the Pulp's ALLOWED_EXPORT_PATHS permits (for fedora_mirror exporters), if known.
    export_dir: str | None = None
    handle: Any = None

    def client(self, **overrides: Any) -> PulpClient:
        data = {"base_url": self.base_url, "username": self.username, "password": self.password}
        data.update(overrides)
        return PulpClient(PulpConfig(**data))


def _start_harness_pulp(tmp_path_factory: pytest.TempPathFactory) -> PulpService | None:
    """Start ``tests.harness.pulp.PulpServer`` (this checkout's plugin installed) for the session.

    Its own state dir (``$PULP_CLIENT_TEST_STATE_DIR``, default ``.state/pulp-client-tests``):
    tests/pulp runs its own instance, and two instances must not share one.
    """
    try:
        harness = importlib.import_module("tests.harness.pulp")
    except ModuleNotFoundError as exc:
        if exc.name == "tests.harness.pulp":
            return None
        raise
    state = os.environ.get("PULP_CLIENT_TEST_STATE_DIR") or str(REPO_ROOT / ".state" / "pulp-client-tests")
    server = harness.PulpServer(state)
    server.start()
    return PulpService(
        base_url=server.base_url,
        username=harness.ADMIN_USER,
        password=harness.ADMIN_PASSWORD,
        export_dir=str(server.export_root),
        handle=server,
    )


@pytest.fixture(scope="session")
def pulp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulpService]:
    """A running Pulp (see the module docstring)."""
    url = os.environ.get("PULP_TEST_URL")
    if url:
        yield PulpService(
            base_url=url,
            username=os.environ.get("PULP_TEST_USERNAME", "admin"),
            password=os.environ.get("PULP_TEST_PASSWORD", "password"),
            export_dir=os.environ.get("PULP_TEST_EXPORT_DIR"),
        )
        return
    service = _start_harness_pulp(tmp_path_factory)
    if service is None:
        pytest.skip("no Pulp: set PULP_TEST_URL or provide tests/harness/pulp.py (branch 'pulp')")
    try:
        yield service
    finally:
        stop = getattr(service.handle, "stop", None)
        if stop is not None:
            stop()


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
