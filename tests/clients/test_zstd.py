"""zstd and zstd:chunked layers through the whole chain: ``fedora-mirror export`` of an OCI layout
skopeo compressed, crane_fedora answering the manifests, nginx serving the blobs, real clients.

Blobs are opaque to the exporter and to crane, so the point is to prove it with the clients Fedora
users have, and to pin down what a mirror must do for podman's partial pulls: follow crane's blob
redirect with a ``Range:`` header, often several ranges (answered ``206 multipart/byteranges``).

What the clients here do (skopeo 1.9.3, podman 4.3.1, containerd 1.6.20): all pull both formats
with digests intact. dockerd 20.10 cannot unpack zstd at all (``failed to register layer:
ApplyLayer exit status 1 stdout:  stderr: archive/tar: invalid tar header``; zstd came with
Docker 23), so it is not tested here (docs/crane.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from crane_fedora.views.ui import human_size
from fixtures.zstd_images import CHANGED, CHUNKED_POSITION, ZSTD_LAYER, ZstdLayout, build_zstd_images
from pulp_fedora_mirror import layout as tree_layout
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import CraneStack
from tests.harness.partial import Fetch, fetches, log_lines, podman_partial_pull, top_layer_files
from tests.harness.tls import TLSFiles

pytestmark = [pytest.mark.services, pytest.mark.clients]

CLI = [sys.executable, "-c", "import sys; from pulp_fedora_mirror.cli import main; sys.exit(main())"]
NAMESPACE = "test"


def fedora_mirror(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, f"fedora-mirror {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def zstd_layouts(state_dir: Path) -> dict[str, ZstdLayout]:
    return build_zstd_images(state_dir / "zstd-images")


def exported_stack(base: Path, tls: TLSFiles, layouts: dict[str, ZstdLayout]) -> CraneStack:
    """crane + nginx over a tree ``fedora-mirror export`` wrote from ``layouts``; the mirror nginx
    serves the same tree, so with ``settle_seconds = 0`` every blob is redirected to it."""
    stack = CraneStack(base, base / "tree", base / "metadata", tls=tls, mirror_tree=base / "tree")
    assert stack.mirror_url is not None
    for name, lay in layouts.items():
        fedora_mirror(
            "export", str(lay.path), "--name", f"{NAMESPACE}/{name}", "--root", str(stack.tree),
            "--metadata-dir", str(stack.metadata_dir), "--master-url", stack.master_url,
            "--mirror-url", stack.mirror_url, "-q",
        )  # fmt: skip
    return stack


@pytest.fixture(scope="module")
def zstd_crane(
    state_dir: Path, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout]
) -> Iterator[CraneStack]:
    with exported_stack(state_dir / "zstd-stack", tls_ca, zstd_layouts) as stack:
        yield stack


def ref(stack: CraneStack, name: str, tag: str) -> str:
    return f"{stack.crane_host}/{NAMESPACE}/{name}:{tag}"


def test_export_keeps_zstd_layers_and_chunked_annotations(
    zstd_crane: CraneStack, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout]
) -> None:
    """The tree verifies, the metadata records each zstd layer with its size and the image facts
    (platform, labels), and crane serves the manifests byte for byte, zstd:chunked's
    table-of-contents annotations included."""
    res = fedora_mirror("verify", str(zstd_crane.tree), "--metadata-dir", str(zstd_crane.metadata_dir))
    assert "OK" in res.stdout
    for name, lay in zstd_layouts.items():
        meta = json.loads(
            (zstd_crane.metadata_dir / tree_layout.metadata_relpath(f"{NAMESPACE}/{name}")).read_text()
        )
        for tag, image in lay.images.items():
            assert meta["tags"][tag] == image.digest
            facts = meta["manifests"][image.digest]  # imagefacts: from the config, not the layers
            assert facts["platform"] == {"os": "linux", "architecture": "amd64"}
            assert facts["labels"] == {"org.example.fixture": f"zstd-{tag}"}
            for layer in image.layers:
                assert layer["mediaType"] == ZSTD_LAYER
                assert meta["blobs"][layer["digest"]]["size"] == layer["size"]
                assert (
                    zstd_crane.tree / tree_layout.blob_path(str(layer["digest"]))
                ).stat().st_size == layer["size"]
            raw = clients.skopeo_inspect(
                f"docker://{ref(zstd_crane, name, tag)}", raw=True, cert_dir=tls_ca.cert_dir()
            )
            assert isinstance(raw, bytes)
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest
            served = json.loads(raw)["layers"]
            assert all(
                (CHUNKED_POSITION in layer.get("annotations", {})) == (name == "zstd-chunked")
                for layer in served
            )


@pytest.mark.parametrize("name", ["zstd", "zstd-chunked"])
def test_repository_page_sums_zstd_sizes(
    zstd_crane: CraneStack, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], name: str
) -> None:
    """The browsable page's sizes are the descriptors' compressed sizes, whatever the compression:
    each tag config + layer, the repository every distinct blob once."""
    ctx = ssl.create_default_context(cafile=str(tls_ca.ca_cert))
    url = f"{zstd_crane.crane_url}/r/{NAMESPACE}/{name}"
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        page = r.read().decode()
    blobs: dict[str, int] = {}
    for tag, image in zstd_layouts[name].images.items():
        descs = [image.manifest["config"], *image.layers]
        sizes = {str(d["digest"]): int(str(d["size"])) for d in descs}  # type: ignore[index]
        blobs.update(sizes)
        row = re.search(rf'<tr id="tag-{tag}">(.*?)</tr>', page, re.S)
        assert row and f"<td>{human_size(sum(sizes.values()))}</td>" in row.group(1)
    assert f"<dt>Total size</dt><dd>{human_size(sum(blobs.values()))}</dd>" in page


@pytest.mark.parametrize("name", ["zstd", "zstd-chunked"])
@pytest.mark.parametrize("dest", ["dir", "oci"])
def test_skopeo_through_crane(
    zstd_crane: CraneStack, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], name: str, dest: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """skopeo copies zstd layers unchanged: same manifest digest, same blobs (no recompression)."""
    image = zstd_layouts[name].images["v1"]
    target = f"dir:{tmp_path / 'd'}" if dest == "dir" else f"oci:{tmp_path / 'o'}:x"
    res = clients.skopeo_copy(
        f"docker://{ref(zstd_crane, name, 'v1')}",
        target,
        preserve_digests=True,
        src_cert_dir=tls_ca.cert_dir(),
    )
    assert res.digest == image.digest
    wanted = {str(image.manifest["config"]["digest"]), *(str(la["digest"]) for la in image.layers)}  # type: ignore[index]
    if dest == "dir":
        stored = {f"sha256:{p.name}" for p in (tmp_path / "d").iterdir() if len(p.name) == 64}
    else:
        assert clients.oci_layout_digest(tmp_path / "o", "x") == image.digest
        stored = {f"sha256:{p.name}" for p in (tmp_path / "o" / "blobs" / "sha256").iterdir()} - {
            image.digest
        }
    assert stored == wanted


@pytest.mark.parametrize("name", ["zstd", "zstd-chunked"])
def test_podman_full_pull_through_crane(
    zstd_crane: CraneStack, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], name: str, tmp_path: Path
) -> None:
    """podman's ordinary pull (vfs: no partial pulls) of both formats keeps the digest. Even so,
    for a zstd:chunked layer it first asks for the table of contents by range, then takes the
    whole layer (why a mirror ignoring Range costs everyone twice, docs/crane.md)."""
    assert zstd_crane.mirror is not None
    image = zstd_layouts[name].images["v1"]
    before = log_lines(zstd_crane.mirror.access_log_path)
    res = clients.podman_pull(ref(zstd_crane, name, "v1"), root=tmp_path / "pm", cert_dir=tls_ca.cert_dir())
    assert res.digest == image.digest
    assert f"sha256:{res.image_id}" == image.manifest["config"]["digest"]  # type: ignore[index]
    layer = image.layers[0]
    got = [
        (f.status, len(f.ranges), f.sent)
        for f in fetches(zstd_crane.mirror.access_log_path, before)
        if f"sha256:{f.hex}" == layer["digest"]
    ]
    whole = (200, 0, layer["size"])
    assert got[-1] == whole and len(got) == (2 if name == "zstd-chunked" else 1), got
    if name == "zstd-chunked":
        assert got[0][:2] == (206, 1)


@pytest.mark.parametrize("name", ["zstd", "zstd-chunked"])
def test_ctr_through_crane(
    zstd_crane: CraneStack,
    tls_ca: TLSFiles,
    containerd: Containerd,
    zstd_layouts: dict[str, ZstdLayout],
    name: str,
) -> None:
    """containerd decompresses both (a zstd:chunked layer is a valid zstd stream) and checks the
    uncompressed digest against the config's diff_ids while unpacking."""
    res = clients.ctr_pull(
        containerd, ref(zstd_crane, name, "v1"), hosts_dir=tls_ca.hosts_dir(zstd_crane.crane_host)
    )
    assert res.digest == zstd_layouts[name].images["v1"].digest


def partial_pulls(
    stack: CraneStack, tls: TLSFiles, layouts: dict[str, ZstdLayout], log: Path, store: Path
) -> dict[str, list[Fetch]]:
    """Partial-pull ``v1`` into an empty store, then ``v2`` into the same store; check each
    image (digest, every file's bytes) and return the layer's GETs in ``log`` per tag."""
    root = store / "root"
    images = layouts["zstd-chunked"].images
    out = {}
    for tag in ("v1", "v2"):
        before = log_lines(log)
        res = podman_partial_pull(ref(stack, "zstd-chunked", tag), root=root, cert_dir=tls.cert_dir())
        assert res.digest == images[tag].digest
        layer = images[tag].layers[0]
        assert f"Retrieved partial blob {layer['digest']}" in res.stderr
        assert top_layer_files(ref(stack, "zstd-chunked", tag), root=root, under="data") == images[tag].files
        out[tag] = [f for f in fetches(log, before) if f"sha256:{f.hex}" == layer["digest"]]
    return out


def test_podman_partial_pull_through_crane_fetches_byte_ranges(
    zstd_crane: CraneStack, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], tmp_path: Path
) -> None:
    """podman with ``enable_partial_images`` follows crane's redirect with ``Range:`` headers: the
    table of contents (one range), then the files it lacks (several ranges in one request, nginx
    answers 206 multipart/byteranges). Pulling ``v2`` into a store holding ``v1`` fetches only
    the two changed files; the image has the right digest and every file the right bytes."""
    assert zstd_crane.mirror is not None
    got = partial_pulls(zstd_crane, tls_ca, zstd_layouts, zstd_crane.mirror.access_log_path, tmp_path)
    for tag, layer_gets in got.items():
        size = int(str(zstd_layouts["zstd-chunked"].images[tag].layers[0]["size"]))
        assert all(f.status == 206 and f.ranges for f in layer_gets), layer_gets  # never the whole blob
        assert len(layer_gets) == 2, layer_gets
        toc, files = layer_gets
        assert len(toc.ranges) == 1 and toc.ranges[0][1] < size
        # v1 into an empty store: the five files; v2: only b and d, with c between them: two ranges
        assert len(files.ranges) > 1 if tag == "v1" else len(files.ranges) == len(CHANGED)
    v2_size = int(str(zstd_layouts["zstd-chunked"].images["v2"].layers[0]["size"]))
    assert sum(f.sent for f in got["v2"]) < v2_size // 2


def test_partial_pull_ranges_survive_a_second_redirect(
    state_dir: Path, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], tmp_path: Path
) -> None:
    """The mirror URL is MirrorManager's redirector, which redirects again, to a mirror: the
    ``Range:`` header must survive both redirects (crane's and the redirector's). Here the
    "redirector" nginx sends every blob on to the master nginx, which answers the ranges."""
    base = state_dir / "zstd-redirector"
    stack = exported_stack(base, tls_ca, {"zstd-chunked": zstd_layouts["zstd-chunked"]})
    assert stack.mirror is not None
    stack.mirror.extra_locations = (
        f"location ~ ^/mirror/containers/(blobs/.*)$ {{ return 302 {stack.master_url}$1; }}"
    )
    with stack:
        got = partial_pulls(stack, tls_ca, zstd_layouts, stack.master.access_log_path, tmp_path)
        redirected = [f for f in fetches(stack.mirror.access_log_path) if f.ranges]
    assert redirected and all(f.status == 302 for f in redirected)
    for layer_gets in got.values():
        assert len(layer_gets) == 2 and all(f.status == 206 and f.ranges for f in layer_gets), layer_gets
    assert len(got["v2"][1].ranges) == len(CHANGED)


def test_partial_pull_from_a_mirror_that_ignores_range(
    state_dir: Path, tls_ca: TLSFiles, zstd_layouts: dict[str, ZstdLayout], tmp_path: Path
) -> None:
    """A mirror that answers ``Range:`` with the whole blob (200; nginx ``max_ranges 0``, or a
    multi-range request to ``max_ranges 1``) still gives podman a correct image, but each of its
    two requests per layer then downloads the whole blob: twice the bytes of an ordinary pull."""
    base = state_dir / "zstd-norange"
    stack = exported_stack(base, tls_ca, {"zstd-chunked": zstd_layouts["zstd-chunked"]})
    assert stack.mirror is not None
    stack.mirror.extra_http = "max_ranges 0;"
    with stack:
        got = partial_pulls(stack, tls_ca, zstd_layouts, stack.mirror.access_log_path, tmp_path)
    for tag, layer_gets in got.items():
        size = int(str(zstd_layouts["zstd-chunked"].images[tag].layers[0]["size"]))
        assert [(f.status, f.sent, bool(f.ranges)) for f in layer_gets] == [(200, size, True)] * 2
