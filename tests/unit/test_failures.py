"""Failures before the metadata step publish nothing and leave nothing behind."""

from __future__ import annotations

import os

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export.errors import ExportError
from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.ocilayout import read_oci_layout
from pulp_fedora_mirror.export.source import BlobSource, ExportTarget, ManifestSource, RepositorySource

from .conftest import MASTER, Env, snapshot
from .ocibuild import LayoutBuilder


def _layer_file(env: Env, role: str = "oci") -> tuple[str, str]:
    import json

    with open(os.path.join(env.layout, "blobs", "sha256", env.descs[role]["digest"][7:])) as fh:
        digest = json.load(fh)["layers"][-1]["digest"]
    return digest, os.path.join(env.layout, "blobs", "sha256", digest[7:])


def _corrupt(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[0] ^= 0xFF  # same size, different bytes: only hashing can tell
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.write(bytes(data))


@pytest.mark.parametrize("hardlink", [True, False])
def test_corrupt_source_publishes_nothing(env: Env, hardlink: bool) -> None:
    digest, path = _layer_file(env)
    _corrupt(path)
    with pytest.raises(ExportError) as exc:
        env.export(hardlink=hardlink)
    msg = str(exc.value)
    assert digest in msg and path in msg and "\n" not in msg
    # nothing published, nothing left: no metadata, no file list, no files, no temp files, no dirs
    assert not os.path.exists(env.meta) or not any(os.scandir(env.meta))
    assert [e.name for e in os.scandir(env.root)] == []


def test_corrupt_source_on_reexport_leaves_tree_as_it_was(env: Env) -> None:
    env.export()
    before = snapshot(env.root, env.meta)
    b = LayoutBuilder(env.layout)
    import json

    b.index = json.load(open(os.path.join(env.layout, "index.json")))["manifests"]
    new = b.image("fresh", layers=4)
    b.tag(new, "fresh")
    b.write()
    layers = json.load(open(os.path.join(env.layout, "blobs", "sha256", new["digest"][7:])))["layers"]
    _corrupt(os.path.join(env.layout, "blobs", "sha256", layers[2]["digest"][7:]))
    with pytest.raises(ExportError, match=layers[2]["digest"]):
        env.export()
    after = snapshot(env.root, env.meta)
    # the blobs placed before the corrupt one were removed again; only directory times moved
    assert set(after) == set(before)
    assert {p: v for p, v in after.items() if not os.path.isdir(p)} == {
        p: v for p, v in before.items() if not os.path.isdir(p)
    }


def test_missing_required_blob_fails_clearly(env: Env) -> None:
    digest, _path = _layer_file(env)
    repo = read_oci_layout(env.layout, "fedora/busybox")
    repo = RepositorySource(
        name=repo.name,
        tags=repo.tags,
        manifests=repo.manifests,
        blobs=[b for b in repo.blobs if b.digest != digest],
    )
    with pytest.raises(ExportError, match=f"references blob {digest}, which is not in the source"):
        export_repository(repo, env.target())
    assert not os.path.exists(env.root) or not any(os.scandir(env.root))


def test_protected_refused_unless_allowed(env: Env) -> None:
    repo = read_oci_layout(env.layout, "fedora/secret", protected=True)
    with pytest.raises(ExportError, match="protected"):
        export_repository(repo, env.target())
    assert not os.path.exists(env.root)
    s = export_repository(repo, env.target(allow_protected=True))
    assert s.files_written > 0


@pytest.mark.parametrize("name", ["Fedora/Busybox", "fedora//x", "-x", "a" * 256, "../etc"])
def test_invalid_names_rejected(env: Env, name: str) -> None:
    with pytest.raises(ExportError, match="invalid repository name"):
        env.export(name=name)


def _tiny(tags: dict[str, str], manifests: list[ManifestSource], blobs: list[BlobSource]) -> RepositorySource:
    return RepositorySource(name="x", tags=tags, manifests=manifests, blobs=blobs)


def test_bad_tags_and_digests(tmp_path) -> None:
    target = ExportTarget(root=str(tmp_path / "r"), metadata_dir=str(tmp_path / "m"), master_url=MASTER)
    b = LayoutBuilder(tmp_path / "l")
    img = b.image("t")
    b.tag(img, "t")
    b.write()
    repo = read_oci_layout(b.path, "x")
    with pytest.raises(ExportError, match="invalid tag"):
        export_repository(_tiny({".bad": img["digest"]}, repo.manifests, repo.blobs), target)
    with pytest.raises(ExportError, match="only sha256"):
        export_repository(_tiny({"t": "sha512:" + "a" * 128}, repo.manifests, repo.blobs), target)
    with pytest.raises(ExportError, match="not in the source"):
        export_repository(_tiny({"t": "sha256:" + "b" * 64}, repo.manifests, repo.blobs), target)
    forged = ManifestSource(
        digest="sha256:" + "c" * 64, media_type=repo.manifests[0].media_type, body=repo.manifests[0].body
    )
    with pytest.raises(ExportError, match="corrupt source"):
        export_repository(_tiny({}, [forged], repo.blobs), target)
    with pytest.raises(ExportError, match="absolute http"):
        export_repository(
            repo, ExportTarget(root=target.root, metadata_dir=target.metadata_dir, master_url="ftp://x/")
        )
    assert not os.path.exists(target.root)


def test_index_with_missing_child_fails(tmp_path) -> None:
    b = LayoutBuilder(tmp_path / "l")
    child = b.image("c")
    idx = b.list_([child])
    b.tag(idx, "latest")
    b.write()
    repo = read_oci_layout(b.path, "x")
    repo = RepositorySource(
        name="x",
        tags=repo.tags,
        blobs=repo.blobs,
        manifests=[m for m in repo.manifests if m.digest != child["digest"]],
    )
    target = ExportTarget(root=str(tmp_path / "r"), metadata_dir=str(tmp_path / "m"), master_url=MASTER)
    with pytest.raises(ExportError, match=f"references manifest {child['digest']}"):
        export_repository(repo, target)


def test_corrupt_tree_file_is_replaced_not_edited(env: Env) -> None:
    env.export()
    digest, _ = _layer_file(env)
    dest = os.path.join(env.root, layout.blob_path(digest))
    # break the link, truncate the tree copy
    os.unlink(dest)
    with open(dest, "wb") as fh:
        fh.write(b"short")
    os.chmod(dest, 0o644)
    ino = os.lstat(dest).st_ino
    s = env.export()
    assert s.replaced == [layout.blob_path(digest)]
    assert os.lstat(dest).st_ino != ino and os.path.getsize(dest) > 5


def test_opener_source_is_copied_and_verified(tmp_path) -> None:
    import io

    data = b"hello blob"
    b = LayoutBuilder(tmp_path / "l")
    img = b.image("o", layers=1)
    b.tag(img, "o")
    b.write()
    repo = read_oci_layout(b.path, "x")
    blobs = [
        BlobSource(digest=x.digest, size=x.size, opener=lambda p=x.path: open(p, "rb")) for x in repo.blobs
    ]
    target = ExportTarget(root=str(tmp_path / "r"), metadata_dir=str(tmp_path / "m"), master_url=MASTER)
    s = export_repository(RepositorySource("x", repo.tags, repo.manifests, blobs), target)
    assert s.blobs_copied == len(blobs) and s.blobs_linked == 0
    bad = [BlobSource(digest=x.digest, size=x.size, opener=lambda: io.BytesIO(data)) for x in repo.blobs]
    target2 = ExportTarget(root=str(tmp_path / "r2"), metadata_dir=str(tmp_path / "m2"), master_url=MASTER)
    with pytest.raises(ExportError, match="<opener>"):
        export_repository(RepositorySource("x", repo.tags, repo.manifests, bad), target2)
    assert not any(os.scandir(target2.root))
