"""Prune: only files unreferenced for the whole grace period go, each deletion logged."""

from __future__ import annotations

import json
import os

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export import filelist
from pulp_fedora_mirror.export.prune import prune
from pulp_fedora_mirror.export.verify import verify

from .conftest import Env
from .ocibuild import LayoutBuilder

DAY = 86400
T0 = 1_800_000_000


def _shrink(env: Env) -> set[str]:
    """Re-export with only the ``oci`` tag; return the tree paths that became unreferenced."""
    before = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    small = str(env.tmp / "small")
    if os.path.exists(os.path.join(small, "index.json")):
        env.export(small)
        after = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
        return {layout.blob_path(d) for d in set(before["blobs"]) - set(after["blobs"])} | {
            layout.manifest_path(d) for d in set(before["manifests"]) - set(after["manifests"])
        }
    b = LayoutBuilder(small)
    img = json.load(open(os.path.join(env.layout, "blobs", "sha256", env.descs["oci"]["digest"][7:])))
    for d in [img["config"], *img["layers"]]:
        os.link(os.path.join(env.layout, "blobs", "sha256", d["digest"][7:]), b.blob_path(d["digest"]))
    os.link(
        os.path.join(env.layout, "blobs", "sha256", env.descs["oci"]["digest"][7:]),
        b.blob_path(env.descs["oci"]["digest"]),
    )
    b.tag(env.descs["oci"], "oci")
    b.write()
    env.export(small)
    after = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    gone = {layout.blob_path(d) for d in set(before["blobs"]) - set(after["blobs"])}
    gone |= {layout.manifest_path(d) for d in set(before["manifests"]) - set(after["manifests"])}
    return gone


def test_grace_period(env: Env) -> None:
    env.export()
    gone = _shrink(env)
    assert len(gone) > 10
    # dry run records nothing
    s = prune(env.root, env.meta, 7 * DAY, dry_run=True, now=T0)
    assert s.deleted == [] and s.unreferenced == len(gone)
    assert not os.path.exists(os.path.join(env.meta, ".fedora-mirror", "prune-state.json"))
    # first sighting: nothing deleted, all recorded
    s = prune(env.root, env.meta, 7 * DAY, now=T0)
    assert s.deleted == [] and s.newly_unreferenced == len(gone)
    state = json.load(open(os.path.join(env.meta, ".fedora-mirror", "prune-state.json")))
    assert set(state["first_unreferenced"]) == gone
    s = prune(env.root, env.meta, 7 * DAY, now=T0 + 7 * DAY - 1)
    assert s.deleted == [] and s.newly_unreferenced == 0 and set(s.waiting.values()) == {1}
    assert all(os.path.exists(os.path.join(env.root, p)) for p in gone)
    # a dry run at the deadline says what would go, removes nothing
    s = prune(env.root, env.meta, 7 * DAY, dry_run=True, now=T0 + 7 * DAY)
    assert set(s.deleted) == gone and all(os.path.exists(os.path.join(env.root, p)) for p in gone)
    s = prune(env.root, env.meta, 7 * DAY, now=T0 + 7 * DAY)
    assert set(s.deleted) == gone
    assert not any(os.path.exists(os.path.join(env.root, p)) for p in gone)
    # empty shard dirs removed, the rest of the tree intact and listed
    for p in gone:
        d = os.path.dirname(os.path.join(env.root, p))
        assert not os.path.isdir(d) or os.listdir(d)
    res = verify(env.root, env.meta)
    assert res.ok and res.unreferenced == [] and res.missing == []
    assert s.filelist_changed
    assert open(os.path.join(env.root, "fullfiletimelist-containers"), "rb").read() == filelist.render(
        env.root
    )
    log = [json.loads(x) for x in open(os.path.join(env.meta, ".fedora-mirror", "prune.log"))]
    assert {e["path"] for e in log} == gone
    assert all(e["time"] and e["size"] > 0 and e["unreferenced_since"] for e in log)
    state = json.load(open(os.path.join(env.meta, ".fedora-mirror", "prune-state.json")))
    assert state["first_unreferenced"] == {}


def test_rereferenced_file_restarts_the_clock(env: Env) -> None:
    env.export()
    gone = _shrink(env)
    prune(env.root, env.meta, 7 * DAY, now=T0)
    env.export()  # the full layout again: everything referenced
    s = prune(env.root, env.meta, 7 * DAY, now=T0 + DAY)
    assert s.unreferenced == 0 and s.deleted == []
    _shrink(env)
    s = prune(env.root, env.meta, 7 * DAY, now=T0 + 8 * DAY)  # first seen again now: not yet
    assert s.deleted == [] and s.newly_unreferenced == len(gone)


def test_other_repositories_keep_shared_files(env: Env) -> None:
    env.export()
    env.export(name="fedora/copy")  # same content, second metadata file
    _shrink(env)
    s = prune(env.root, env.meta, 0, now=T0)
    assert s.unreferenced == 0 and s.deleted == []


def test_zero_grace_deletes_at_first_sighting_and_logs_it(env: Env) -> None:
    """Grace 0 (allowed by the CLI and the Pulp exporter) removes files the first time they are
    seen unreferenced; the log still says since when (regression: this raised KeyError)."""
    env.export()
    gone = _shrink(env)
    s = prune(env.root, env.meta, 0, now=T0)
    assert set(s.deleted) == gone and s.newly_unreferenced == len(gone)
    assert not any(os.path.exists(os.path.join(env.root, p)) for p in gone)
    log = [json.loads(x) for x in open(os.path.join(env.meta, ".fedora-mirror", "prune.log"))]
    assert {e["path"] for e in log} == gone
    assert {e["unreferenced_since"] for e in log} == {e["time"] for e in log}
    # nothing is left waiting, so there is no state to keep
    assert not os.path.exists(os.path.join(env.meta, ".fedora-mirror", "prune-state.json"))


def test_referenced_again_between_prunes_restarts_the_grace(env: Env) -> None:
    """Unreferenced, referenced again, unreferenced again with no prune in between: the grace
    counts from the last time metadata referenced the file, not from the first sighting."""
    env.export()
    gone = _shrink(env)
    prune(env.root, env.meta, 7 * DAY, now=T0)  # first sighting at T0
    env.export()  # referenced again (a mirror may sync this metadata now)
    assert prune(env.root, env.meta, 7 * DAY, dry_run=True, now=T0 + 3 * DAY).unreferenced == 0
    _shrink(env)  # and unreferenced again, with no prune run while it was referenced
    s = prune(env.root, env.meta, 7 * DAY, now=T0 + 7 * DAY)
    assert s.deleted == [], "deleted files that were referenced a moment ago"
    assert set(s.waiting) == gone
