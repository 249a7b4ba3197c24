"""Real clients pulling through crane_fedora: manifests from crane, blobs redirected to nginx.

The tree and metadata come from :mod:`tests.harness.tree` (the documented contract, not the
exporter), published long ago, so with ``settle_seconds = 0`` every blob goes to the mirror
nginx; the master must see no blob request.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.build_images import IMAGE_NAMES, FixtureImage
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import CraneStack
from tests.harness.dockerd import Dockerd
from tests.harness.tls import TLSFiles
from tests.harness.tree import write_tree

pytestmark = [pytest.mark.services, pytest.mark.clients]


@contextlib.contextmanager
def settled_stack(
    base: Path, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage], **kw: Any
) -> Iterator[CraneStack]:
    """Master and mirror nginx with every fixture blob, metadata published long ago (so with
    ``settle_seconds = 0`` all blobs go to the mirror), and crane over it; ``kw`` go to CraneStack."""
    stack = CraneStack(
        base, base / "master", base / "metadata", tls=tls_ca, mirror_tree=base / "mirror", **kw
    )
    write_tree(fixture_images, base / "mirror")
    write_tree(
        fixture_images,
        base / "master",
        base / "metadata",
        master_url=stack.master_url,
        mirror_url=stack.mirror_url,
        published=0,
    )
    with stack:
        yield stack


@pytest.fixture(scope="module")
def crane(state_dir: Path, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage]) -> Iterator[CraneStack]:
    with settled_stack(state_dir / "crane-stack", tls_ca, fixture_images) as stack:
        yield stack


@pytest.fixture(params=IMAGE_NAMES)
def image(request: pytest.FixtureRequest, fixture_images: dict[str, FixtureImage]) -> FixtureImage:
    return fixture_images[request.param]


def ref(stack: CraneStack, image: FixtureImage, how: str) -> str:
    base = f"{stack.crane_host}/{image.repo()}"
    return f"{base}:{image.tag}" if how == "tag" else f"{base}@{image.digest}"


def blob_requests(log: Path) -> list[str]:
    """Blob paths nginx served (from the harness access log format)."""
    if not log.exists():
        return []
    return re.findall(r'"(?:GET|HEAD) (\S*/blobs/sha256/\S+) HTTP', log.read_text())


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_skopeo_through_crane(
    crane: CraneStack, tls_ca: TLSFiles, image: FixtureImage, how: str, tmp_path: Path
) -> None:
    res = clients.skopeo_copy(
        f"docker://{ref(crane, image, how)}",
        f"dir:{tmp_path / 'd'}",
        preserve_digests=True,
        src_cert_dir=tls_ca.cert_dir(),
    )
    assert res.digest == image.digest


@pytest.mark.parametrize("name", [n for n in IMAGE_NAMES if n.endswith("-oci")])
def test_skopeo_oci_copy_through_crane_keeps_the_published_blobs(
    crane: CraneStack, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage], name: str, tmp_path: Path
) -> None:
    """``copy --all`` into ``oci:`` (skopeo's parallel layer copy) stores the published manifests
    and blobs unchanged: the client neither converts nor recompresses anything it pulls through
    crane, so a pull costs it no more work than from the registry the image was pushed to (issue
    13 item 8: the slowdown reported there came from comparing against a registry holding gzipped
    copies of uncompressed layers, see benchmarks/pull_bench.py)."""
    image = fixture_images[name]
    layout = tmp_path / "oci"
    res = clients.skopeo_copy(
        f"docker://{ref(crane, image, 'tag')}", f"oci:{layout}:x", src_cert_dir=tls_ca.cert_dir()
    )
    assert res.digest == image.digest
    assert clients.oci_layout_digest(layout, "x") == image.digest
    stored = {f"sha256:{p.name}" for p in (layout / "blobs" / "sha256").iterdir()}
    assert stored == {image.digest, *image.children, *image.blob_digests}


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_podman_through_crane(
    crane: CraneStack, tls_ca: TLSFiles, image: FixtureImage, how: str, tmp_path: Path
) -> None:
    res = clients.podman_pull(
        ref(crane, image, how), root=tmp_path / "pm", cert_dir=tls_ca.cert_dir(), arch="amd64"
    )
    assert res.digest == image.digest


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_ctr_through_crane(
    crane: CraneStack, tls_ca: TLSFiles, containerd: Containerd, image: FixtureImage, how: str
) -> None:
    res = clients.ctr_pull(containerd, ref(crane, image, how), hosts_dir=tls_ca.hosts_dir(crane.crane_host))
    assert res.digest == image.digest


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_docker_through_crane(crane: CraneStack, dockerd: Dockerd, image: FixtureImage, how: str) -> None:
    res = clients.docker_pull(dockerd, ref(crane, image, how), remove=True)
    assert res.digest == image.digest


def test_settled_blobs_come_from_the_mirror(
    crane: CraneStack, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage], tmp_path: Path
) -> None:
    """Blobs published long ago (settle 0) are redirected to the mirror; the master serves none."""
    assert crane.mirror is not None
    image = fixture_images["multi-oci"]
    mirror_before = len(blob_requests(crane.mirror.access_log_path))
    master_before = len(blob_requests(crane.master.access_log_path))
    clients.skopeo_copy(
        f"docker://{ref(crane, image, 'tag')}", f"dir:{tmp_path / 'd'}", src_cert_dir=tls_ca.cert_dir()
    )
    fetched = blob_requests(crane.mirror.access_log_path)[mirror_before:]
    assert {p.rsplit("/", 1)[1] for p in fetched} == {d.split(":", 1)[1] for d in image.blob_digests}
    assert len(blob_requests(crane.master.access_log_path)) == master_before


def test_fresh_blobs_go_to_the_master_while_the_mirror_lags(
    state_dir: Path,
    tls_ca: TLSFiles,
    fixture_images: dict[str, FixtureImage],
    containerd: Containerd,
    tmp_path: Path,
) -> None:
    """Mirror-lag scenario: the mirror has no blobs yet, they were published just now and
    ``settle_seconds`` is an hour, so crane must send every blob to the master."""
    base = state_dir / "crane-lag"
    stack = CraneStack(
        base, base / "master", base / "metadata", tls=tls_ca, mirror_tree=base / "mirror",
        settle_seconds=3600,
    )  # fmt: skip
    write_tree(fixture_images, base / "mirror", blobs=False)  # manifests only: the mirror lags
    write_tree(
        fixture_images, base / "master", base / "metadata",
        master_url=stack.master_url, mirror_url=stack.mirror_url,
    )  # fmt: skip
    image = fixture_images["multi-oci"]
    with stack:
        res = clients.skopeo_copy(
            f"docker://{ref(stack, image, 'tag')}", f"dir:{tmp_path / 'd'}", src_cert_dir=tls_ca.cert_dir()
        )
        assert res.digest == image.digest
        res = clients.ctr_pull(
            containerd, ref(stack, image, "tag"), hosts_dir=tls_ca.hosts_dir(stack.crane_host)
        )
        assert res.digest == image.digest
        assert stack.mirror is not None
        assert blob_requests(stack.mirror.access_log_path) == []
        assert {p.rsplit("/", 1)[1] for p in blob_requests(stack.master.access_log_path)} == {
            d.split(":", 1)[1] for d in image.blob_digests
        }
