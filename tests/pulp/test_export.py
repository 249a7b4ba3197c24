"""Export through the REST API into a real tree: sync from docker-registry, export, check disk."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export.verify import verify
from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi, TaskFailed
from tests.pulp.conftest import Registry, SyncedRepo, sync_repo, uid


def _export(api: PulpApi, exporter: dict[str, Any], **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run an export; return (task, export record)."""
    task = api.run(api.post(exporter["pulp_href"] + "exports/", body))
    hrefs = [h for h in task["created_resources"] if "/exports/" in h]
    assert len(hrefs) == 1, task["created_resources"]
    return task, api.ok(api.get(hrefs[0]), 200)


def _distribution(api: PulpApi, base_path: str, **serves: Any) -> str:
    """Create a container distribution at ``base_path`` (``serves``: repository or
    repository_version, and ``private``); return its href."""
    body = {"name": uid("dist"), "base_path": base_path, **serves}
    return api.run(api.post("distributions/container/container/", body))["created_resources"][0]


def _tree_snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (inode, size, mtime_ns) of every file, to prove a no-op export touched nothing."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            st = os.lstat(os.path.join(dirpath, fn))
            out[os.path.relpath(os.path.join(dirpath, fn), root)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


# -- request validation (no task runs) ----------------------------------------------------------


def test_export_request_validation(api: PulpApi, make_exporter: Any, synced_repo: SyncedRepo) -> None:
    exp = make_exporter()
    url = exp["pulp_href"] + "exports/"
    for body in ({}, {"repository": synced_repo.href, "repository_version": synced_repo.version_href}):
        resp = api.post(url, body)
        assert resp.status_code == 400, resp.text
        assert "Exactly one of 'repository' or 'repository_version'" in resp.text
    resp = api.post(url, {"repository": synced_repo.href, "name": "Bad/Name"})
    assert resp.status_code == 400 and "not a valid registry name" in resp.json()["name"][0]
    resp = api.post(
        url, {"repository_version": "/pulp/api/v3/repositories/container/container/nope/versions/1/"}
    )
    assert resp.status_code == 400
    file_repo = api.ok(api.post("repositories/file/file/", {"name": uid("file")}), 201)
    try:
        resp = api.post(url, {"repository": file_repo["pulp_href"]})
        assert resp.status_code == 400, resp.text
    finally:
        api.run(api.delete(file_repo["pulp_href"]))


# -- real exports ---------------------------------------------------------------------------------


def test_export_repository_version(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo
) -> None:
    exp = make_exporter(module="containers-test")
    root, meta = Path(exp["path"]), Path(exp["metadata_path"])
    image = synced_repo.image
    task, record = _export(api, exp, repository_version=synced_repo.version_href, name="fedora/multi-oci")

    # The record: params, summary, the exported version.
    assert record["params"] == {"repository_version": synced_repo.version_href, "name": "fedora/multi-oci"}
    summary = record["summary"]
    assert summary["name"] == "fedora/multi-oci"
    assert summary["tags"] == {image.tag: image.digest}
    assert summary["manifests"] == len(image.manifests) == summary["manifests_written"]
    assert summary["blobs"] == len(image.blobs)
    # Pulp's media root and the tree share a filesystem: every blob is a hard link.
    assert summary["blobs_linked"] == len(image.blobs) and summary["blobs_copied"] == 0
    assert summary["metadata_changed"] is True and summary["filelist_changed"] is True
    assert task["result"] is None  # the summary is stored once: on the record
    assert [r for r in record["exported_resources"]] == [synced_repo.version_href]

    # Progress reports: the core's phases (the counters are in the record's summary only).
    reports = {r["code"]: r for r in task["progress_reports"]}
    assert set(reports) == {
        f"fedora_mirror.{c}" for c in ("blobs", "manifests", "signatures", "metadata", "filelist")
    }
    assert (
        reports["fedora_mirror.blobs"]["done"] == len(image.blobs) == reports["fedora_mirror.blobs"]["total"]
    )
    assert reports["fedora_mirror.manifests"]["done"] == len(image.manifests)
    assert {r["state"] for r in task["progress_reports"]} == {"completed"}

    # The tree: content-addressed files, byte-exact manifests, blobs hard-linked to artifacts.
    for digest, manifest in image.manifests.items():
        assert (root / layout.manifest_path(digest)).read_bytes() == manifest.body
    for digest, blob in image.blobs.items():
        path = root / layout.blob_path(digest)
        assert path.stat().st_size == blob.size
        assert path.stat().st_nlink >= 2  # the artifact in MEDIA_ROOT is the other link
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert (root / "fullfiletimelist-containers-test").is_file()
    result = verify(str(root), str(meta))
    assert result.ok, result

    # The metadata crane_fedora reads.
    doc = json.loads((meta / "fedora" / "multi-oci.json").read_text())
    assert (doc["type"], doc["version"], doc["repo-registry-id"]) == ("fedora-mirror", 6, "fedora/multi-oci")
    assert doc["repository"] == synced_repo.name
    assert doc["urls"] == {"master": exp["master_url"], "mirror": exp["mirror_url"]}
    assert doc["tags"] == {image.tag: image.digest}
    assert set(doc["manifests"]) == set(image.manifests)
    assert set(doc["blobs"]) == set(image.blobs)
    assert doc["export"]["id"] == record["pulp_href"].rstrip("/").rsplit("/", 1)[1]
    assert doc["export"]["source"] == synced_repo.version_href

    # The exporter's export list shows it.
    listed = api.ok(api.get(exp["pulp_href"] + "exports/"), 200)
    assert [e["pulp_href"] for e in listed["results"]] == [record["pulp_href"]]

    # Re-export of the unchanged version writes nothing at all.
    before = _tree_snapshot(root), _tree_snapshot(meta)
    _task, again = _export(api, exp, repository_version=synced_repo.version_href, name="fedora/multi-oci")
    s2 = again["summary"]
    assert (s2["blobs_linked"], s2["blobs_copied"], s2["manifests_written"], s2["bytes_written"]) == (
        0,
        0,
        0,
        0,
    )
    assert s2["blobs_present"] == len(image.blobs)
    assert s2["metadata_changed"] is False and s2["filelist_changed"] is False
    assert (_tree_snapshot(root), _tree_snapshot(meta)) == before


def test_export_latest_with_distribution_name(api: PulpApi, make_exporter: Any, registry: Registry) -> None:
    # Own repository: pulp_container 2.30 deletes a repository together with its only
    # distribution (viewsets.repository_deleted_with_distribution), even a synced one.
    synced_repo = sync_repo(api, registry, "multi-oci")
    exp = make_exporter()
    base_path = f"fedora/{uid('dist')}"
    dist = _distribution(api, base_path, repository=synced_repo.href)
    try:
        _task, record = _export(api, exp, repository=synced_repo.href)
        assert record["params"]["name"] == base_path
        assert record["params"]["repository_version"] == synced_repo.version_href  # the latest
        doc = json.loads((Path(exp["metadata_path"]) / f"{base_path}.json").read_text())
        assert doc["repo-registry-id"] == base_path
        assert doc["protected"] is False
    finally:
        api.run(api.delete(dist))


def test_default_name_is_repository_name(api: PulpApi, make_exporter: Any, registry: Registry) -> None:
    repo = sync_repo(api, registry, "single-oci")
    exp = make_exporter()
    _task, record = _export(api, exp, repository=repo.href)
    assert record["summary"]["name"] == repo.name
    assert (Path(exp["metadata_path"]) / f"{repo.name}.json").is_file()


def test_private_distribution_is_protected(api: PulpApi, make_exporter: Any, registry: Registry) -> None:
    """A repository served by a private distribution is refused unless allow_protected."""
    synced_repo = sync_repo(api, registry, "multi-oci")
    base_path = f"private/{uid('p')}"
    dist = _distribution(api, base_path, repository=synced_repo.href, private=True)
    try:
        exp = make_exporter()
        task = api.run(
            api.post(exp["pulp_href"] + "exports/", {"repository": synced_repo.href, "name": base_path}),
            check=False,
        )
        assert task["state"] == "failed"
        assert "protected" in task["error"]["description"]
        assert api.ok(api.get(exp["pulp_href"] + "exports/"), 200)["count"] == 0  # no record left
        assert not any(Path(exp["metadata_path"]).rglob("*.json"))

        allowed = make_exporter(
            allow_protected=True, path=exp["path"] + "-2", metadata_path=exp["metadata_path"] + "-2"
        )
        _task, _record = _export(api, allowed, repository=synced_repo.href, name=base_path)
        doc = json.loads((Path(allowed["metadata_path"]) / f"{base_path}.json").read_text())
        assert doc["protected"] is True
    finally:
        api.run(api.delete(dist))


def test_on_demand_content_fails_clearly(api: PulpApi, make_exporter: Any, registry: Registry) -> None:
    # An image no test syncs with policy immediate: the session's Pulp (shared with tests/client,
    # its database kept between runs) must not already hold its blobs from another repository.
    repo = sync_repo(api, registry, "multi-docker", policy="on_demand")
    exp = make_exporter()
    with pytest.raises(TaskFailed) as info:
        _export(api, exp, repository=repo.href)
    desc = info.value.task["error"]["description"]
    assert "no downloaded artifact" in desc and "immediate" in desc
    assert api.ok(api.get(exp["pulp_href"] + "exports/"), 200)["count"] == 0
    assert list(Path(exp["path"]).rglob("*")) == []  # refused before the core touched the tree


def test_prune(api: PulpApi, make_exporter: Any, synced_repo: SyncedRepo) -> None:
    exp = make_exporter(prune_grace=1)
    root = Path(exp["path"])
    _export(api, exp, repository_version=synced_repo.version_href, name="prune/me")
    stray_digest = "sha256:" + hashlib.sha256(b"stray").hexdigest()
    stray = root / layout.blob_path(stray_digest)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"stray")
    rel = layout.blob_path(stray_digest)

    dry = api.run(api.post(exp["pulp_href"] + "prune/", {"dry_run": True}))["result"]
    assert dry["dry_run"] is True and dry["unreferenced"] == 1 and stray.exists()
    first = api.run(api.post(exp["pulp_href"] + "prune/", {}))["result"]
    assert first["dry_run"] is False and rel in first["waiting"] and stray.exists()
    time.sleep(1.2)
    second = api.run(api.post(exp["pulp_href"] + "prune/", {"dry_run": False}))["result"]
    assert second["deleted"] == [rel] and not stray.exists()
    assert second["referenced"] == len(synced_repo.image.blobs) + len(synced_repo.image.manifests)
    assert verify(str(root), exp["metadata_path"]).ok

    resp = api.post(exp["pulp_href"] + "prune/", {"dry_run": "maybe"})
    assert resp.status_code == 400


def test_export_to_unknown_exporter(api: PulpApi, synced_repo: SyncedRepo) -> None:
    href = "exporters/fedora_mirror/mirror/01234567-89ab-cdef-0123-456789abcdef/exports/"
    assert api.post(href, {"repository_version": synced_repo.version_href}).status_code == 404


def test_repositories_share_one_tree(
    api: PulpApi, make_exporter: Any, registry: Registry, synced_repo: SyncedRepo
) -> None:
    """Two repositories through one exporter, dispatched back to back: serialised by the
    exporter lock, shared layers stored once, both metadata files valid."""
    other = sync_repo(api, registry, "single-oci")
    exp = make_exporter()
    url = exp["pulp_href"] + "exports/"
    t1 = api.ok(api.post(url, {"repository_version": synced_repo.version_href, "name": "a/multi"}), 202)
    t2 = api.ok(api.post(url, {"repository_version": other.version_href, "name": "b/single"}), 202)
    first, second = api.wait_task(t1["task"]), api.wait_task(t2["task"])
    # The exporter is the exclusive resource: the second ran after the first.
    assert second["started_at"] >= first["finished_at"]
    shared = set(synced_repo.image.blobs) & set(other.image.blobs)
    assert shared, "fixtures share the amd64 hello.txt layer"
    (record_href,) = [h for h in second["created_resources"] if "/exports/" in h]
    assert api.ok(api.get(record_href), 200)["summary"]["blobs_present"] >= len(shared)
    meta = Path(exp["metadata_path"])
    assert (meta / "a" / "multi.json").is_file() and (meta / "b" / "single.json").is_file()
    assert verify(exp["path"], str(meta)).ok


def test_private_distribution_of_a_version_is_protected(
    api: PulpApi, make_exporter: Any, registry: Registry
) -> None:
    """A private distribution serving a *version* of the repository protects it too."""
    # Not single-docker: test_on_demand_content_fails_clearly needs its blobs never downloaded.
    repo = sync_repo(api, registry, "single-oci")
    base_path = f"private/{uid('v')}"
    dist = _distribution(api, base_path, repository_version=repo.version_href, private=True)
    try:
        exp = make_exporter()
        task = api.run(
            api.post(exp["pulp_href"] + "exports/", {"repository": repo.href, "name": "pub/leak"}),
            check=False,
        )
        assert task["state"] == "failed", "a privately distributed version went into the mirror"
        assert "protected" in task["error"]["description"]
        assert not any(Path(exp["metadata_path"]).rglob("*.json"))
    finally:
        api.run(api.delete(dist))
