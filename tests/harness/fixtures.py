"""Session-scoped pytest fixtures for real-service tests.

Import into a directory's ``conftest.py`` (pytest refuses ``pytest_plugins`` outside the rootdir
conftest)::

    from tests.harness.fixtures import *  # noqa: F403

Everything is started once per session on free loopback ports, with state under one pytest tmp
dir (kept for the last three runs: logs are there after a failure), and stopped at the end.
Set ``HARNESS_STATE_DIR`` to use a fixed directory instead (e.g. ``.state/harness``).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.build_images import FixtureImage, build_images
from fixtures.push import push_fixtures
from tests.harness.containerd import Containerd
from tests.harness.dockerd import Dockerd
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles

__all__ = [
    "containerd",
    "dockerd",
    "fixture_images",
    "pushed_registry",
    "registry",
    "state_dir",
    "tls_ca",
]


def _require(*binaries: str) -> None:
    """Skip (fail in CI, see tests/conftest.py) when a client or daemon is not installed."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (run `make deps`)")


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of all harness state for this session (logs: ``<state_dir>/<service>/<name>.log``).

    Also turns SIGTERM (a CI timeout, ``kill``) into KeyboardInterrupt so fixture teardown still
    stops the daemons, which run in their own sessions and would otherwise outlive pytest.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    fixed = os.environ.get("HARNESS_STATE_DIR")
    if fixed:
        p = Path(fixed).resolve()
        p.mkdir(parents=True, exist_ok=True)
        return p
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def tls_ca(state_dir: Path) -> TLSFiles:
    """Test CA and a server cert for 127.0.0.1/localhost (``ca_cert``, ``cert``, ``key``)."""
    _require("openssl")
    return TLSFiles.create(state_dir / "tls")


@pytest.fixture(scope="session")
def fixture_images(state_dir: Path) -> dict[str, FixtureImage]:
    """The four fixture images, built once per session (``{name: FixtureImage}``)."""
    return build_images(state_dir / "fixtures")


@pytest.fixture(scope="session")
def registry(state_dir: Path, tls_ca: TLSFiles) -> Iterator[Registry]:
    """An empty docker-registry 2.8 serving https on 127.0.0.1 with the test CA's cert."""
    _require("docker-registry")
    with Registry(state_dir / "registry", tls=tls_ca) as reg:
        yield reg


@pytest.fixture(scope="session")
def pushed_registry(
    registry: Registry, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage]
) -> Registry:
    """``registry`` holding the four fixtures as ``test/<name>:latest``, digests verified."""
    _require("skopeo")
    push_fixtures(
        fixture_images,
        registry.host,
        scheme=registry.scheme,
        tls_verify=True,
        cert_dir=str(tls_ca.cert_dir()),
        cafile=str(tls_ca.ca_cert),
    )
    return registry


@pytest.fixture(scope="session")
def containerd(state_dir: Path) -> Iterator[Containerd]:
    """A private containerd (socket: ``containerd.address``)."""
    _require("containerd", "ctr")
    with Containerd(state_dir / "containerd") as c:
        yield c


@pytest.fixture(scope="session")
def dockerd(state_dir: Path, containerd: Containerd) -> Iterator[Dockerd]:
    """A private dockerd (vfs, no networking) on the harness containerd; ``dockerd.host``."""
    _require("dockerd", "docker")
    with Dockerd(state_dir / "dockerd", containerd) as d:
        yield d
