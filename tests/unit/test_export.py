"""A first export: paths, modes, metadata document and file list follow docs/layout.md."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from pulp_fedora_mirror import layout, mediatypes
from pulp_fedora_mirror.export import filelist

from .conftest import MASTER, MIRROR, Env


def _tree_files(root: str) -> set[str]:
    out = set()
    for dirpath, _d, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(dirpath, f), root))
    return out


def _image_blobs(env: Env, role: str) -> list[str]:
    with open(os.path.join(env.layout, "blobs", "sha256", env.descs[role]["digest"][7:]), "rb") as fh:
        doc = json.load(fh)
    return [d["digest"] for d in [doc["config"], *doc["layers"]]]


def test_tree_paths_are_content_addressed(env: Env) -> None:
    s = env.export()
    files = _tree_files(env.root)
    for role in ("index", "amd", "arm", "att", "dlist", "d1", "d2", "docker", "oci"):
        d = env.descs[role]["digest"]
        rel = f"manifests/sha256/{d[7:9]}/{d[7:]}"
        assert rel in files
        with open(os.path.join(env.root, rel), "rb") as fh:
            assert "sha256:" + hashlib.sha256(fh.read()).hexdigest() == d
    for role in ("amd", "d1", "oci"):
        for d in _image_blobs(env, role):
            assert layout.blob_path(d) in files
    # schema 1 is skipped, and so is its tag
    old = env.descs["old"]["digest"]
    assert layout.manifest_path(old) not in files
    assert s.skipped_schema1 == [old]
    assert s.skipped_tags == ["old"]
    assert "fullfiletimelist-containers" in files
    # nothing but blobs, manifests and the three file lists; no temp files
    lists = {"fullfiletimelist-containers", "fullfilelist", "imagelist-containers"}
    assert {f.split("/")[0] for f in files} == {"blobs", "manifests", *lists}
    assert not [f for f in files if os.path.basename(f).startswith(".")]
    assert s.files_written == s.blobs + s.manifests + 2  # + metadata + file list


def test_modes_ignore_umask(env: Env) -> None:
    old = os.umask(0o077)
    try:
        env.export(hardlink=False)
    finally:
        os.umask(old)
    for top in (env.root, env.meta):
        for dirpath, dirnames, files in os.walk(top):
            for d in dirnames:
                assert stat.S_IMODE(os.lstat(os.path.join(dirpath, d)).st_mode) == 0o755, d
            for f in files:
                assert stat.S_IMODE(os.lstat(os.path.join(dirpath, f)).st_mode) == 0o644, f


def test_metadata_document(env: Env) -> None:
    env.export(now=1795914000)
    path = os.path.join(env.meta, "fedora", "busybox.json")
    raw = open(path, encoding="utf-8").read()
    doc = json.loads(raw)
    # keys sorted on disk
    assert raw == json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert doc["type"] == "fedora-mirror" and doc["version"] == 6
    assert doc["repo-registry-id"] == "fedora/busybox"
    assert doc["protected"] is False
    assert doc["urls"] == {"master": MASTER, "mirror": MIRROR}
    d = env.descs
    assert doc["tags"] == {
        "latest": d["index"]["digest"],
        "41": d["index"]["digest"],
        "dlist": d["dlist"]["digest"],
        "docker": d["docker"]["digest"],
        "oci": d["oci"]["digest"],
    }
    for digest, m in doc["manifests"].items():
        body = m["body"].encode("utf-8")
        assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
        assert len(body) == m["size"]
    idx = doc["manifests"][d["index"]["digest"]]
    assert idx["mediaType"] == mediatypes.OCI_INDEX
    att = next(c for c in idx["manifests"] if c["digest"] == d["att"]["digest"])
    assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert att["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert set(att) == {"digest", "mediaType", "size", "platform", "annotations"}
    assert doc["manifests"][d["dlist"]["digest"]]["mediaType"] == mediatypes.DOCKER_LIST
    img = doc["manifests"][d["amd"]["digest"]]
    assert img["blobs"] == _image_blobs(env, "amd")  # config first, then layers
    assert "manifests" not in img
    # foreign layer: listed in the manifest's blobs, not in the blob map (not in the tree)
    docker = doc["manifests"][d["docker"]["digest"]]
    assert docker["mediaType"] == mediatypes.DOCKER_MANIFEST
    foreign = docker["blobs"][-1]
    assert foreign not in doc["blobs"]
    assert not os.path.exists(os.path.join(env.root, layout.blob_path(foreign)))
    for digest, info in doc["blobs"].items():
        assert info == {
            "size": os.path.getsize(os.path.join(env.root, layout.blob_path(digest))),
            "published": 1795914000,
        }
    assert d["old"]["digest"] not in doc["manifests"]
    assert doc["export"]["exported"] == "2026-11-29T01:00:00Z"  # 1795914000 in UTC
    assert doc["export"]["source"] == env.layout


def test_filelist_format(env: Env) -> None:
    env.export()
    # the written list is the current render (checked first: creating and removing the dot-file
    # below bumps the ctime of blobs/, which shows in its entry once the second has turned)
    on_disk = open(os.path.join(env.root, "fullfiletimelist-containers"), "rb").read()
    assert on_disk == filelist.render(env.root)
    # a stray dot-file must not be listed
    open(os.path.join(env.root, "blobs", ".hidden"), "w").close()
    text = filelist.render(env.root).decode()
    lines = text.split("\n")
    assert lines[:4] == ["[Version]", "2", "", "[Files]"]
    assert text.endswith(
        "\n\n[Checksums SHA1]\n\n[Checksums MD5]\n\n[Checksums SHA256]\n\n[Checksums SHA512]\n\n[End]\n"
    )
    entries = [ln.split("\t") for ln in lines[4 : lines.index("", 4)]]
    paths = [e[3] for e in entries]
    assert all(not os.path.basename(p).startswith(".") for p in paths)
    assert not any(p.startswith("fullfiletimelist") for p in paths)
    for ts, kind, size, rel in entries:
        st = os.lstat(os.path.join(env.root, rel))
        assert int(ts) == int(max(st.st_mtime, st.st_ctime))
        assert kind == ("d" if stat.S_ISDIR(st.st_mode) else "f")
        assert int(size) == st.st_size
    # a directory's entries come before the directory itself
    for i, rel in enumerate(paths):
        if entries[i][1] == "d":
            children = [j for j, p in enumerate(paths) if p.startswith(rel + "/")]
            assert children and max(children) < i
    assert paths[-1] == "manifests" and "blobs" in paths


def test_module_name_option(env: Env) -> None:
    env.export(module="fedora-containers")
    assert os.path.exists(os.path.join(env.root, "fullfiletimelist-fedora-containers"))
    assert not os.path.exists(os.path.join(env.root, "fullfiletimelist-containers"))


def test_provenance_and_protected_flag(env: Env) -> None:
    from pulp_fedora_mirror.export.exporter import export_repository
    from pulp_fedora_mirror.export.ocilayout import read_oci_layout

    repo = read_oci_layout(env.layout, "fedora/secret", protected=True, repository="pulp-secret")
    export_repository(repo, env.target(allow_protected=True, mirror_url=None), export_id="exp-42", now=0)
    doc = json.load(open(os.path.join(env.meta, "fedora", "secret.json")))
    assert doc["protected"] is True and doc["repository"] == "pulp-secret"
    assert doc["urls"] == {"master": MASTER, "mirror": None}
    assert doc["export"] == {"id": "exp-42", "source": env.layout, "exported": "1970-01-01T00:00:00Z"}
