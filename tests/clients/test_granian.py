"""crane_fedora under granian (docs/crane.md recommends it for throughput): real clients pull.

Same tree and metadata as ``test_crane.py`` (published long ago, so blobs go to the mirror nginx),
served by granian with TLS instead of gunicorn: the server change must not change a single byte a
client sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.build_images import IMAGE_NAMES, FixtureImage
from tests.clients.test_crane import blob_requests, ref, settled_stack
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import CraneStack
from tests.harness.dockerd import Dockerd
from tests.harness.tls import TLSFiles

pytestmark = [pytest.mark.services, pytest.mark.clients]


@pytest.fixture(scope="module")
def granian_crane(
    state_dir: Path, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage]
) -> Iterator[CraneStack]:
    with settled_stack(state_dir / "crane-granian", tls_ca, fixture_images, server="granian") as stack:
        yield stack


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_skopeo_and_podman_through_granian(
    granian_crane: CraneStack,
    tls_ca: TLSFiles,
    fixture_images: dict[str, FixtureImage],
    name: str,
    tmp_path: Path,
) -> None:
    image = fixture_images[name]
    assert granian_crane.mirror is not None
    before = len(blob_requests(granian_crane.mirror.access_log_path))
    res = clients.skopeo_copy(
        f"docker://{ref(granian_crane, image, 'digest')}",
        f"dir:{tmp_path / 'd'}",
        preserve_digests=True,
        src_cert_dir=tls_ca.cert_dir(),
    )
    assert res.digest == image.digest
    # every blob of the image came from the mirror nginx, through granian's redirects
    fetched = {p.rsplit("/", 1)[1] for p in blob_requests(granian_crane.mirror.access_log_path)[before:]}
    assert fetched == {d.split(":", 1)[1] for d in image.blob_digests}
    res = clients.podman_pull(
        ref(granian_crane, image, "tag"), root=tmp_path / "pm", cert_dir=tls_ca.cert_dir(), arch="amd64"
    )
    assert res.digest == image.digest


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_ctr_and_docker_through_granian(
    granian_crane: CraneStack,
    tls_ca: TLSFiles,
    containerd: Containerd,
    dockerd: Dockerd,
    fixture_images: dict[str, FixtureImage],
    name: str,
) -> None:
    """containerd and dockerd HEAD the manifest first: granian must pass HEAD answers through intact."""
    image = fixture_images[name]
    res = clients.ctr_pull(
        containerd, ref(granian_crane, image, "tag"), hosts_dir=tls_ca.hosts_dir(granian_crane.crane_host)
    )
    assert res.digest == image.digest
    res = clients.docker_pull(dockerd, ref(granian_crane, image, "tag"), remove=True)
    assert res.digest == image.digest
