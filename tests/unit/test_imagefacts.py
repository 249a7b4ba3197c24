"""Version-6 image facts (docs/layout.md §4.1): what the exporter records so crane never reads a blob."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from pulp_fedora_mirror import mediatypes
from pulp_fedora_mirror.export.errors import ExportError
from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.imagefacts import config_facts, manifest_facts
from pulp_fedora_mirror.export.ocilayout import read_oci_layout
from pulp_fedora_mirror.export.source import BlobSource, ExportTarget, ManifestSource, RepositorySource

from .conftest import MASTER
from .ocibuild import OCI_CONFIG, OCI_LAYER, LayoutBuilder

FLATPAK_LABELS = {
    "org.flatpak.ref": "app/org.test.Hello/x86_64/master",
    "org.flatpak.metadata": "[Application]\nname=org.test.Hello\nruntime=org.test.Platform/x86_64/master\n",
}


def _image(b: LayoutBuilder, arch: str, labels: dict[str, str] | None, **extra: object) -> dict:
    cfg = {"os": "linux", "architecture": arch, "created": "2026-11-29T01:00:00Z", "config": {}}
    if arch == "arm64":
        cfg["variant"] = "v8"
    if labels is not None:
        cfg["config"]["Labels"] = labels
    config = b.add_blob(json.dumps(cfg).encode(), OCI_CONFIG)
    layer = b.add_blob(f"layer {arch}".encode(), OCI_LAYER)
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": config, "layers": [layer]}
    doc.update(extra)
    desc = b.add_manifest(doc, mediatypes.OCI_MANIFEST)
    desc["platform"] = {"os": "linux", "architecture": arch}
    return desc


def _export(tmp_path: Path, path: str) -> dict:
    repo = read_oci_layout(path, "fedora/hello")
    target = ExportTarget(root=str(tmp_path / "root"), metadata_dir=str(tmp_path / "meta"), master_url=MASTER)
    export_repository(repo, target, now=1795914000)
    return json.loads((tmp_path / "meta" / "fedora" / "hello.json").read_text())


def test_image_and_list_children_get_platform_labels_annotations(tmp_path: Path) -> None:
    b = LayoutBuilder(str(tmp_path / "layout"))
    amd = _image(b, "amd64", FLATPAK_LABELS, annotations={"org.example.note": "amd", "bad": 1})
    arm = _image(b, "arm64", {"org.flatpak.ref": "app/org.test.Hello/aarch64/master"})
    plain = _image(b, "amd64", None)
    index = b.add_manifest(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_INDEX,
            "manifests": [amd, arm],
            "annotations": {"org.example.list": "yes"},
        },
        mediatypes.OCI_INDEX,
    )
    b.tag(index, "latest")
    b.tag(plain, "plain")
    doc = _export(tmp_path, b.write())
    m = doc["manifests"]
    a = m[amd["digest"]]
    assert a["platform"] == {"os": "linux", "architecture": "amd64"}
    assert a["labels"] == FLATPAK_LABELS
    assert a["annotations"] == {"org.example.note": "amd"}  # non-string values are dropped
    assert a["created"] == "2026-11-29T01:00:00Z"
    assert m[arm["digest"]]["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert m[arm["digest"]]["labels"] == {"org.flatpak.ref": "app/org.test.Hello/aarch64/master"}
    assert "labels" not in m[plain["digest"]] and "annotations" not in m[plain["digest"]]
    lst = m[index["digest"]]
    assert lst["annotations"] == {"org.example.list": "yes"}
    assert "platform" not in lst and "labels" not in lst
    # crane reads every key back (the contract, both sides)
    from crane_fedora.config import Config
    from crane_fedora.metadata.native import parse_native

    repo = parse_native(doc, "fedora/hello.json", Config())
    cm = repo.manifests[amd["digest"]]
    assert dict(cm.labels) == FLATPAK_LABELS and dict(cm.platform) == a["platform"]
    assert cm.created == "2026-11-29T01:00:00Z"


def test_subject_and_artifact_type(tmp_path: Path) -> None:
    b = LayoutBuilder(str(tmp_path / "layout"))
    img = _image(b, "amd64", None)
    sbom_cfg = b.add_blob(b"{}", "application/vnd.example.sbom.config")
    layer = b.add_blob(b"sbom", "application/json")
    subject = {"mediaType": img["mediaType"], "digest": img["digest"], "size": img["size"]}
    ref1 = b.add_manifest(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": sbom_cfg,
            "layers": [layer],
            "subject": subject,
        },
        mediatypes.OCI_MANIFEST,
    )
    ref2 = b.add_manifest(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": b.add_blob(b"{}", "application/vnd.oci.empty.v1+json"),
            "layers": [layer],
            "subject": subject,
        },
        mediatypes.OCI_MANIFEST,
    )
    b.tag(img, "latest")
    b.tag(ref1, "sbom")
    b.tag(ref2, "sig")
    doc = _export(tmp_path, b.write())
    m = doc["manifests"]
    assert m[ref1["digest"]]["subject"] == subject
    assert m[ref1["digest"]]["artifactType"] == "application/vnd.example.sbom.config"
    assert m[ref2["digest"]]["artifactType"] == "application/vnd.example.sig"
    assert "platform" not in m[ref1["digest"]]  # an artifact's config is no image config
    assert "subject" not in m[img["digest"]] and "artifactType" not in m[img["digest"]]


def test_pure_functions_on_odd_input() -> None:
    assert config_facts(OCI_CONFIG, b"not json") == {}
    assert config_facts(OCI_CONFIG, b"[1]") == {}
    assert config_facts(OCI_CONFIG, b'{"os": "linux"}') == {}  # no architecture: no platform
    assert config_facts("application/vnd.example", b'{"os": "linux", "architecture": "amd64"}') == {}
    assert config_facts(OCI_CONFIG, b'{"config": {"Labels": null}}') == {}
    assert manifest_facts({"annotations": [], "subject": {"digest": 1}}) == {}
    assert manifest_facts({"artifactType": "x/y"}) == {"artifactType": "x/y"}


def test_reexport_is_byte_stable(tmp_path: Path) -> None:
    b = LayoutBuilder(str(tmp_path / "layout"))
    b.tag(_image(b, "amd64", FLATPAK_LABELS), "latest")
    path = b.write()
    _export(tmp_path, path)
    meta = tmp_path / "meta" / "fedora" / "hello.json"
    before = meta.read_bytes(), os.stat(meta).st_ino
    _export(tmp_path, path)
    assert (meta.read_bytes(), os.stat(meta).st_ino) == before


def test_config_read_through_opener_and_checked(tmp_path: Path) -> None:
    """Pulp's path: a blob without a local file is read through its opener, and its digest checked."""
    b = LayoutBuilder(str(tmp_path / "layout"))
    desc = _image(b, "s390x", {"k": "v"})
    b.tag(desc, "latest")
    repo = read_oci_layout(b.write(), "fedora/hello")
    data = {x.digest: Path(x.path).read_bytes() for x in repo.blobs}
    blobs = [BlobSource(x.digest, x.size, opener=lambda d=data[x.digest]: io.BytesIO(d)) for x in repo.blobs]
    manifests = [ManifestSource(m.digest, m.media_type, m.body) for m in repo.manifests]
    pulp_like = RepositorySource("fedora/hello", repo.tags, manifests, blobs)
    target = ExportTarget(root=str(tmp_path / "root"), metadata_dir=str(tmp_path / "meta"), master_url=MASTER)
    export_repository(pulp_like, target)
    doc = json.loads((tmp_path / "meta" / "fedora" / "hello.json").read_text())
    assert doc["manifests"][desc["digest"]]["labels"] == {"k": "v"}
    assert doc["manifests"][desc["digest"]]["platform"]["architecture"] == "s390x"

    config_digest = json.loads(manifests[0].body)["config"]["digest"]
    corrupt = [
        BlobSource(x.digest, x.size, opener=lambda n=x.size: io.BytesIO(b"x" * n))
        if x.digest == config_digest
        else x
        for x in blobs
    ]
    target2 = ExportTarget(root=str(tmp_path / "r2"), metadata_dir=str(tmp_path / "m2"), master_url=MASTER)
    with pytest.raises(ExportError, match="corrupt"):
        export_repository(RepositorySource("fedora/hello", repo.tags, manifests, corrupt), target2)
    assert not (tmp_path / "m2" / "fedora" / "hello.json").exists()
