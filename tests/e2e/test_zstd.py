"""zstd:chunked images the Fedora way: pushed to the candidate registry, synced into Pulp,
``fedora-mirror release``d (the Pulp export task writes tree and metadata), served by crane +
nginx, and pulled partially by podman.

What it proves beyond ``tests/clients/test_zstd.py`` (which exports an OCI layout): Pulp keeps
the zstd:chunked manifests and layers byte for byte (digests, table-of-contents annotations), and
the export task's tree answers podman's range requests the same way.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.zstd_images import CHANGED, CHUNKED_POSITION, TAGS, ZstdLayout, build_zstd_images
from tests.e2e.helpers import admin_cli, export_dirs, mirror_exporter, synced_candidate, uid
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import CraneStack
from tests.harness.partial import fetches, log_lines, podman_partial_pull, top_layer_files
from tests.harness.pulp import PulpServer
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles
from tests.pulp.client import PulpApi

pytestmark = [pytest.mark.services, pytest.mark.clients, pytest.mark.pulp]

NAME = "fedora/zstd-chunked"


@dataclass
class ZstdChain:
    stack: CraneStack
    tls: TLSFiles
    layout: ZstdLayout
    metadata: Path

    def ref(self, tag: str) -> str:
        return f"{self.stack.crane_host}/{NAME}:{tag}"


@pytest.fixture(scope="module")
def zchain(
    state_dir: Path, tls_ca: TLSFiles, registry: Registry, pulp_server: PulpServer, pulp_api: PulpApi
) -> Iterator[ZstdChain]:
    """Push v1 and v2 (zstd:chunked) as candidates, sync, release both tags, verify, serve."""
    layout = build_zstd_images(state_dir / "zstd-images-e2e")["zstd-chunked"]
    run = uid("zstd")
    home = state_dir / f"{run}-home"
    home.mkdir()
    cli = admin_cli(pulp_server, home)
    upstream = f"candidates/{run}"
    for tag in TAGS:
        clients.skopeo_copy(
            f"oci:{layout.path}:{tag}",
            f"docker://{registry.host}/{upstream}:{tag}",
            preserve_digests=True,
            dest_cert_dir=tls_ca.cert_dir(),
        )
    _remote, candidate, stable = synced_candidate(pulp_api, run, registry, upstream, tls_ca)
    export_base, tree, metadata = export_dirs(pulp_server, run)
    stack = CraneStack(state_dir / f"{run}-stack", tree, metadata, tls=tls_ca, mirror_tree=tree)
    exporter = mirror_exporter(pulp_api, run, tree, metadata, stack.master_url, mirror_url=stack.mirror_url)
    try:
        cli(
            "release", "--from", candidate["name"], "--to", stable["name"], "--tag", "v1", "--tag", "v2",
            "--exporter", exporter["name"], "--name", NAME, "--json",
        )  # fmt: skip
        cli("verify", str(tree), "--metadata-dir", str(metadata))
        stack.start()
        yield ZstdChain(stack, tls_ca, layout, metadata)
    finally:
        stack.stop()
        shutil.rmtree(export_base, ignore_errors=True)


def test_pulp_keeps_zstd_chunked_manifests_byte_for_byte(zchain: ZstdChain) -> None:
    doc = json.loads((zchain.metadata / f"{NAME}.json").read_text())
    assert doc["tags"] == {tag: image.digest for tag, image in zchain.layout.images.items()}
    for tag, image in zchain.layout.images.items():
        raw = clients.skopeo_inspect(f"docker://{zchain.ref(tag)}", raw=True, cert_dir=zchain.tls.cert_dir())
        assert isinstance(raw, bytes)
        assert json.loads(raw) == image.manifest
        assert CHUNKED_POSITION in json.loads(raw)["layers"][0]["annotations"]
        for layer in image.layers:
            assert doc["blobs"][layer["digest"]]["size"] == layer["size"]


def test_podman_partial_pull_of_pulp_exported_images(zchain: ZstdChain, tmp_path: Path) -> None:
    """v1 into an empty store, then v2: both partial (206 answers only), v2 fetching just the two
    changed files in one two-range request; every file has the right bytes."""
    assert zchain.stack.mirror is not None
    log = zchain.stack.mirror.access_log_path
    root = tmp_path / "store"
    for tag, image in zchain.layout.images.items():
        before = log_lines(log)
        res = podman_partial_pull(zchain.ref(tag), root=root, cert_dir=zchain.tls.cert_dir())
        assert res.digest == image.digest
        layer = image.layers[0]
        assert f"Retrieved partial blob {layer['digest']}" in res.stderr
        got = [f for f in fetches(log, before) if f"sha256:{f.hex}" == layer["digest"]]
        assert len(got) == 2 and all(f.status == 206 and f.ranges for f in got), got
        if tag == "v2":
            assert len(got[1].ranges) == len(CHANGED)
        assert top_layer_files(zchain.ref(tag), root=root, under="data") == image.files


def test_ctr_pulls_pulp_exported_zstd_chunked(zchain: ZstdChain, containerd: Containerd) -> None:
    """containerd unpacks the whole layer and checks it against the config's diff_ids."""
    res = clients.ctr_pull(
        containerd, zchain.ref("v2"), hosts_dir=zchain.tls.hosts_dir(zchain.stack.crane_host)
    )
    assert res.digest == zchain.layout.images["v2"].digest
