"""Reading OCI image layouts: tags, nesting, media types, and clear errors."""

from __future__ import annotations

import json
import os

import pytest

from pulp_fedora_mirror import mediatypes
from pulp_fedora_mirror.export.ocilayout import LayoutError, read_oci_layout

from .conftest import Env
from .ocibuild import LayoutBuilder


def test_tags_and_content(env: Env) -> None:
    repo = read_oci_layout(env.layout, "fedora/busybox")
    d = env.descs
    assert repo.tags == {
        "latest": d["index"]["digest"],
        "41": d["index"]["digest"],
        "dlist": d["dlist"]["digest"],
        "docker": d["docker"]["digest"],  # from io.containerd.image.name
        "oci": d["oci"]["digest"],
        "old": d["old"]["digest"],
    }
    types = {m.digest: m.media_type for m in repo.manifests}
    assert types[d["dlist"]["digest"]] == mediatypes.DOCKER_LIST
    assert types[d["d1"]["digest"]] == mediatypes.DOCKER_MANIFEST
    assert types[d["att"]["digest"]] == mediatypes.OCI_MANIFEST
    assert types[d["old"]["digest"]] == mediatypes.DOCKER_SCHEMA1_SIGNED
    assert all(b.path and os.path.isfile(b.path) for b in repo.blobs)
    assert repo.source == os.path.abspath(env.layout)


def test_nested_index(tmp_path) -> None:
    b = LayoutBuilder(tmp_path / "l")
    leaf = b.image("leaf")
    inner = b.list_([leaf])
    outer = b.list_([inner])
    b.tag(outer, "nested")
    b.write()
    repo = read_oci_layout(b.path, "x")
    assert {m.digest for m in repo.manifests} == {leaf["digest"], inner["digest"], outer["digest"]}
    assert len(repo.blobs) == 3


def test_full_reference_annotation(tmp_path) -> None:
    b = LayoutBuilder(tmp_path / "l")
    img = b.image("r")
    b.tag(img, "docker.io/library/busybox:1.36")
    untagged = b.image("u")
    b.tag(untagged, "x", containerd="docker.io/library/busybox")  # no :tag → untagged
    b.write()
    repo = read_oci_layout(b.path, "x")
    assert repo.tags == {"1.36": img["digest"]}
    assert {m.digest for m in repo.manifests} == {img["digest"], untagged["digest"]}


def test_not_a_layout(tmp_path) -> None:
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        read_oci_layout(str(tmp_path), "x")
    with pytest.raises(LayoutError, match="not a directory"):
        read_oci_layout(str(tmp_path / "nope"), "x")


def test_missing_blob(env: Env) -> None:
    with open(os.path.join(env.layout, "blobs", "sha256", env.descs["oci"]["digest"][7:])) as fh:
        layer = json.load(fh)["layers"][0]["digest"]
    os.unlink(os.path.join(env.layout, "blobs", "sha256", layer[7:]))
    with pytest.raises(LayoutError, match=f"blob {layer} .* is missing"):
        read_oci_layout(env.layout, "x")


def test_bad_json(env: Env) -> None:
    with open(os.path.join(env.layout, "index.json"), "w") as fh:
        fh.write("{not json")
    with pytest.raises(LayoutError, match=r"index\.json .* not valid JSON"):
        read_oci_layout(env.layout, "x")


def test_flatpak_ref_name_needs_a_tag(tmp_path) -> None:
    """A ``flatpak build-bundle --oci`` layout names its manifest by Flatpak ref, not by tag."""
    import pytest

    from pulp_fedora_mirror.export.ocilayout import LayoutError, read_oci_layout

    from .ocibuild import LayoutBuilder

    b = LayoutBuilder(str(tmp_path / "bundle"))
    desc = b.image("flatpak")
    b.tag(desc, "app/org.test.Hello/x86_64/master")
    path = b.write()
    with pytest.raises(LayoutError, match="--tag"):
        read_oci_layout(path, "fedora/hello")
    with pytest.raises(LayoutError, match="invalid tag"):
        read_oci_layout(path, "fedora/hello", ref_tag="no/slash")
    assert read_oci_layout(path, "fedora/hello", ref_tag="latest").tags == {"latest": desc["digest"]}
