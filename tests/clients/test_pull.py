"""Push the fixtures to a real docker-registry (https, test CA) and pull every image by tag and
by digest with skopeo, podman, ctr and docker; each must end up with the fixture's digest.

This proves the harness (services, TLS trust per client, digest reporting) before the same
helpers are pointed at crane_fedora. The registry serves TLS so skopeo/podman never hit the
10 s plain-HTTP fallback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fixtures.build_images import IMAGE_NAMES, FixtureImage
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.dockerd import Dockerd
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles

pytestmark = [pytest.mark.services, pytest.mark.clients]

REFS = ("tag", "digest")


def ref_for(registry: Registry, image: FixtureImage, how: str) -> str:
    """``127.0.0.1:PORT/test/<name>:latest`` or ``…@sha256:…``."""
    base = f"{registry.host}/{image.repo()}"
    return f"{base}:{image.tag}" if how == "tag" else f"{base}@{image.digest}"


@pytest.fixture(params=IMAGE_NAMES)
def image(request: pytest.FixtureRequest, fixture_images: dict[str, FixtureImage]) -> FixtureImage:
    return fixture_images[request.param]


@pytest.mark.parametrize("how", REFS)
def test_skopeo_copy_to_dir_keeps_digests(
    pushed_registry: Registry, tls_ca: TLSFiles, image: FixtureImage, how: str, tmp_path: Path
) -> None:
    """``dir:`` preserves every manifest byte for byte, so all digests must match."""
    out = tmp_path / "dir"
    res = clients.skopeo_copy(
        f"docker://{ref_for(pushed_registry, image, how)}",
        f"dir:{out}",
        preserve_digests=True,
        src_cert_dir=tls_ca.cert_dir(),
    )
    assert res.digest == image.digest
    assert "sha256:" + hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() == image.digest
    for child in image.children:
        body = (out / f"{child.split(':', 1)[1]}.manifest.json").read_bytes()
        assert "sha256:" + hashlib.sha256(body).hexdigest() == child
    for blob in image.blob_digests:
        assert (out / blob.split(":", 1)[1]).stat().st_size == image.blobs[blob].size


@pytest.mark.parametrize("how", REFS)
def test_skopeo_copy_all_to_oci(
    pushed_registry: Registry, tls_ca: TLSFiles, image: FixtureImage, how: str, tmp_path: Path
) -> None:
    """``copy --all`` to an ``oci:`` layout: OCI images keep their digests; Docker ones are
    converted by skopeo (new manifest digests) but must reference the fixture's blobs."""
    layout = tmp_path / "oci"
    res = clients.skopeo_copy(
        f"docker://{ref_for(pushed_registry, image, how)}", f"oci:{layout}:x", src_cert_dir=tls_ca.cert_dir()
    )
    assert clients.oci_layout_digest(layout, "x") == res.digest
    blobs_dir = layout / "blobs" / "sha256"
    if image.name.endswith("-oci"):
        assert res.digest == image.digest
        for d in (*image.children, *image.blob_digests):
            assert (blobs_dir / d.split(":", 1)[1]).exists(), d
    else:
        assert res.digest != image.digest  # converted to OCI: documents skopeo's behaviour
        present = {p.name for p in blobs_dir.iterdir()}
        layers = {b for m in (image.digest, *image.children) for b in image.manifests[m].blobs[1:]}
        assert {d.split(":", 1)[1] for d in layers} <= present


@pytest.mark.parametrize("how", REFS)
def test_skopeo_inspect(pushed_registry: Registry, tls_ca: TLSFiles, image: FixtureImage, how: str) -> None:
    """``inspect --raw`` returns the exact top-level bytes; ``inspect`` resolves to linux/amd64."""
    ref = f"docker://{ref_for(pushed_registry, image, how)}"
    raw = clients.skopeo_inspect(ref, raw=True, cert_dir=tls_ca.cert_dir())
    assert isinstance(raw, bytes)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest
    info = clients.skopeo_inspect(ref, cert_dir=tls_ca.cert_dir(), override_arch="amd64")
    assert isinstance(info, dict)
    assert info["Architecture"] == "amd64"
    assert info["Digest"] == image.digest
    expected_layers = image.manifests[image.child_for("amd64") if image.is_list else image.digest].blobs[1:]
    assert info["Layers"] == list(expected_layers)


@pytest.mark.parametrize("how", REFS)
def test_podman_pull(
    pushed_registry: Registry, tls_ca: TLSFiles, image: FixtureImage, how: str, tmp_path: Path
) -> None:
    res = clients.podman_pull(
        ref_for(pushed_registry, image, how),
        root=tmp_path / "podman",
        cert_dir=tls_ca.cert_dir(),
        arch="amd64",
    )
    assert res.digest == image.digest
    amd64 = image.child_for("amd64") if image.is_list else image.digest
    assert set(res.digests) == {image.digest, amd64}
    assert f"sha256:{res.image_id}" == image.manifests[amd64].blobs[0]  # image id = config digest


@pytest.mark.parametrize("how", REFS)
def test_ctr_pull(
    pushed_registry: Registry, tls_ca: TLSFiles, containerd: Containerd, image: FixtureImage, how: str
) -> None:
    res = clients.ctr_pull(
        containerd,
        ref_for(pushed_registry, image, how),
        platform="linux/amd64",
        hosts_dir=tls_ca.hosts_dir(pushed_registry.host),
    )
    assert res.digest == image.digest


@pytest.mark.parametrize("how", REFS)
def test_docker_pull(pushed_registry: Registry, dockerd: Dockerd, image: FixtureImage, how: str) -> None:
    res = clients.docker_pull(dockerd, ref_for(pushed_registry, image, how), remove=True)
    assert res.digest == image.digest
    assert image.digest in res.digests
    amd64 = image.child_for("amd64") if image.is_list else image.digest
    assert res.image_id == image.manifests[amd64].blobs[0]
