"""The fixture builder alone (no services): reproducible bytes and internally consistent images."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from fixtures.build_images import FixtureImage, build_images


def test_fixture_images_are_reproducible(fixture_images: dict[str, FixtureImage], tmp_path: Path) -> None:
    """A second build gives the same digests and an identical images.json."""
    again = build_images(tmp_path / "again")
    assert {n: i.digest for n, i in again.items()} == {n: i.digest for n, i in fixture_images.items()}
    first = json.loads((Path(fixture_images["single-oci"].oci_layout).parent / "images.json").read_text())
    second = json.loads((tmp_path / "again" / "images.json").read_text())
    for doc in (first, second):
        for entry in doc.values():
            entry.pop("dir_path")
            entry.pop("oci_layout")
    assert first == second


def test_configs_match_layers_and_platforms(fixture_images: dict[str, FixtureImage]) -> None:
    """diff_ids are the sha256 of the uncompressed layers; config platform equals the list's."""
    for image in fixture_images.values():
        for digest in (image.digest, *image.children):
            m = image.manifests[digest]
            if m.children:
                continue
            body = json.loads(m.body)
            assert body["mediaType"] == m.media_type
            config = json.loads(image.blobs[m.blobs[0]].data)
            if m.platform:
                assert config["architecture"] == m.platform["architecture"]
                assert config["os"] == m.platform["os"]
            for layer, diff_id in zip(m.blobs[1:], config["rootfs"]["diff_ids"], strict=True):
                data = image.blobs[layer].data
                if image.blobs[layer].media_type.endswith("gzip"):
                    raw = gzip.decompress(data)
                    assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
                    names = tarfile.open(fileobj=io.BytesIO(raw)).getnames()
                    assert names in (["hello.txt"], ["fixture.txt"])
                else:  # the in-toto attestation layer is stored uncompressed
                    assert layer == diff_id
