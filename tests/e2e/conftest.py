"""Fixtures of the end-to-end tests: the harness's services and a real Pulp.

The e2e tests chain the real parts exactly as Fedora would run them (registry → Pulp → Bodhi's
``fedora-mirror`` commands → exporter → mirror tree + metadata → nginx + crane_fedora → real
clients), so nothing here is a stand-in: every fixture starts a real process.

Pulp's state lives in ``$E2E_PULP_STATE_DIR`` (default ``.state/e2e-pulp`` in the checkout): the
second run reuses the migrated database and starts in seconds instead of paying ~20 s of
migrations. Every run uses fresh, unique repository/exporter names and its own export directory,
so a reused database never leaks state between runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import *  # noqa: F403
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.pulp.client import PulpApi

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- Pulp -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pulp_server() -> Iterator[PulpServer]:
    """A real pulpcore (PostgreSQL, API, content app, worker) with this checkout's plugin."""
    state = Path(os.environ.get("E2E_PULP_STATE_DIR", REPO_ROOT / ".state" / "e2e-pulp")).resolve()
    server = PulpServer(state)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pulp_api(pulp_server: PulpServer) -> PulpApi:
    """Admin REST client for ``pulp_server`` (plain requests, hrefs as Pulp returns them)."""
    return PulpApi(pulp_server.base_url, ADMIN_USER, ADMIN_PASSWORD)
