"""Re-exports: unchanged content writes nothing; new content writes only new files."""

from __future__ import annotations

import json
import os

from pulp_fedora_mirror import layout

from .conftest import Env, snapshot, wait_for_clock_past
from .ocibuild import LayoutBuilder, standard_layout


def test_unchanged_reexport_writes_nothing(env: Env) -> None:
    env.export(now=1000)
    before = snapshot(env.root, env.meta)
    wait_for_clock_past(before, env.tmp)  # so any write would show in mtime/ctime
    s = env.export(now=2000)  # a different clock must not matter either
    assert s.files_written == 0
    assert not s.metadata_changed and not s.filelist_changed
    assert s.blobs_present == s.blobs and s.manifests_written == 0
    assert snapshot(env.root, env.meta) == before


def test_idempotent_after_many_runs(env: Env) -> None:
    env.export()
    first = snapshot(env.root, env.meta)
    for _ in range(3):
        assert env.export().files_written == 0
    assert snapshot(env.root, env.meta) == first


def test_new_tag_writes_only_new_files(env: Env) -> None:
    env.export(now=1000)
    before = snapshot(env.root, env.meta)
    b = LayoutBuilder(env.layout)
    with open(os.path.join(env.layout, "index.json")) as fh:
        b.index = json.load(fh)["manifests"]
    new = b.image("brand-new", layers=3)
    b.tag(new, "new")
    b.write()
    wait_for_clock_past(before, env.tmp)
    s = env.export(now=5000)
    assert s.files_written == 4 + 1 + 1 + 1  # config + 3 layers, manifest, metadata, file lists
    assert (s.blobs_linked + s.blobs_copied, s.manifests_written) == (4, 1)
    after = snapshot(env.root, env.meta)
    created = set(after) - set(before)
    changed = {p for p in before if after[p] != before[p]}
    new_files = {p for p in created if os.path.isfile(p)}
    assert len(new_files) == 5
    # only the new files, the shard dirs they landed in, their parents, metadata and list changed
    for p in changed:
        assert os.path.isdir(p) or p.endswith(
            ("busybox.json", "fullfiletimelist-containers", "fullfilelist")
        ), p
    doc = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    assert doc["tags"]["new"] == new["digest"]
    # published: old blobs keep their time, new ones get now
    with open(os.path.join(env.layout, "blobs", "sha256", new["digest"][7:]), "rb") as fh:
        m = json.load(fh)
    new_blobs = {d["digest"] for d in [m["config"], *m["layers"]]}
    for digest, info in doc["blobs"].items():
        assert info["published"] == (5000 if digest in new_blobs else 1000)


def test_blob_already_in_tree_gets_its_ctime(env: Env) -> None:
    env.export(now=1000)
    other = str(env.tmp / "other")
    standard_layout(other)  # same seed: same blobs, already in the tree
    env.export(other, name="fedora/other", now=999999999)
    doc = json.load(open(os.path.join(env.meta, "fedora", "other.json")))
    for digest, info in doc["blobs"].items():
        st = os.lstat(os.path.join(env.root, layout.blob_path(digest)))
        assert info["published"] == int(st.st_ctime)


def test_published_survives_a_retag(env: Env) -> None:
    env.export(now=1000)
    # drop a tag: content changes (tags), blob times must not
    with open(os.path.join(env.layout, "index.json")) as fh:
        idx = json.load(fh)
    idx["manifests"] = [
        m for m in idx["manifests"] if m["annotations"].get("org.opencontainers.image.ref.name") != "41"
    ]
    with open(os.path.join(env.layout, "index.json"), "w") as fh:
        json.dump(idx, fh)
    s = env.export(now=9000)
    assert s.metadata_changed and s.files_written == 1  # metadata only; tree untouched
    doc = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    assert "41" not in doc["tags"]
    assert {i["published"] for i in doc["blobs"].values()} == {1000}
