"""A real Pulp for the client tests (``@pytest.mark.pulp``), and a registry to sync from.

Where the Pulp comes from, in order:

1. ``PULP_TEST_URL`` (+ ``PULP_TEST_USERNAME``/``PULP_TEST_PASSWORD``, default admin/password):
   an already running Pulp (pulpcore + pulp-container, with or without pulp_fedora_mirror).
2. ``tests/harness/pulp.py`` (built on branch ``pulp``): its ``Pulp`` class is started for the
   session. Its API was not final when this was written; :func:`_start_harness_pulp` is the one
   place to adapt.

Without either the Pulp tests skip, which ``CI=true`` turns into a failure: in CI they must run.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pulp_fedora_mirror.client import PulpClient, PulpConfig

from .registry import Registry, build_oci_layout


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
    try:
        harness = importlib.import_module("tests.harness.pulp")
    except ModuleNotFoundError as exc:
        if exc.name == "tests.harness.pulp":
            return None
        raise
    cls = getattr(harness, "Pulp", None) or getattr(harness, "PulpServer", None)
    if cls is None:
        return None
    instance = cls()
    (getattr(instance, "start", None) or (lambda: None))()

    def attr(*names: str, default: Any = None) -> Any:
        for n in names:
            v = getattr(instance, n, None)
            if v is not None:
                return v
        return default

    return PulpService(
        base_url=str(attr("base_url", "url")),
        username=attr("username", default="admin"),
        password=attr("password", default="password"),
        export_dir=attr("export_dir", "exports_dir", "export_root"),
        handle=instance,
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
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry with ``demo/hello:latest`` and ``demo/hello:v2``."""
    base = tmp_path_factory.mktemp("registry")
    reg = Registry(base / "registry").start()
    try:
        build_oci_layout(base / "oci", ["latest", "v2"])
        reg.push(base / "oci", "demo/hello", ["latest", "v2"])
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def candidate(pulp: PulpService, registry: Registry) -> dict[str, Any]:
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
