"""Incremental reload: added, removed, edited-in-place and broken files; duplicates; the poller."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time

from .builder import Native
from .conftest import FIXTURES, refresh


def names(app) -> set[str]:
    return set(app.extensions["crane_fedora"].store.index.repos)


def small(name: str, tag: str = "x", seed: str = "1") -> Native:
    n = Native(name)
    n.tag(tag, n.image(seed))
    return n


def test_add_and_remove(make_app, data_dir):
    small("a/one").write(data_dir)
    app = make_app()
    assert names(app) == {"a/one"}
    assert refresh(app) is False  # nothing changed: no rebuild
    small("a/two").write(data_dir)
    assert refresh(app) is True
    assert names(app) == {"a/one", "a/two"}
    (data_dir / "a" / "one.json").unlink()
    refresh(app)
    assert names(app) == {"a/two"}
    assert app.test_client().get("/v2/a/one/manifests/x").status_code == 404


def test_in_place_edit_is_seen(make_app, data_dir):
    path = small("a/one", tag="x").write(data_dir)
    app = make_app()
    st = os.stat(path)
    doc = json.loads(path.read_text())
    doc["tags"] = {"y": doc["tags"]["x"]}  # same length as before: only mtime/content differ
    with open(path, "r+", encoding="utf-8") as fh:  # truly in place: same inode
        fh.write(json.dumps(doc, sort_keys=True))
        fh.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert os.stat(path).st_ino == st.st_ino
    refresh(app)
    client = app.test_client()
    assert client.get("/v2/a/one/manifests/y").status_code == 200
    assert client.get("/v2/a/one/manifests/x").status_code == 404


def test_broken_file_keeps_last_good_version_and_logs_once(make_app, data_dir, caplog):
    path = small("a/one").write(data_dir)
    app = make_app()
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # half-written
    with caplog.at_level(logging.ERROR, logger="crane_fedora"):
        refresh(app)
        refresh(app)  # unchanged broken file: not re-parsed, not re-logged
    errors = [r for r in caplog.records if "one.json" in r.getMessage()]
    assert len(errors) == 1 and "keeping its last good version" in errors[0].getMessage()
    assert app.test_client().get("/v2/a/one/manifests/x").status_code == 200
    assert app.extensions["crane_fedora"].store.index.errors == 1
    path.write_text(good.replace('"x"', '"z"'))
    refresh(app)
    assert app.test_client().get("/v2/a/one/manifests/z").status_code == 200
    assert app.extensions["crane_fedora"].store.index.errors == 0


def test_broken_new_file_is_just_skipped(make_app, data_dir):
    small("a/one").write(data_dir)
    (data_dir / "junk.json").write_text("{nope")
    app = make_app()
    assert names(app) == {"a/one"}
    assert app.test_client().get("/healthz").json["errors"] == 1


def test_dot_names_and_non_json_ignored(make_app, data_dir):
    small("a/hidden").write(data_dir, ".hidden.json")
    small("a/tmp").write(data_dir, ".fedora-mirror/state.json")
    small("a/txt").write(data_dir, "notes.txt")
    small("a/real").write(data_dir)
    assert names(make_app()) == {"a/real"}


def test_symlinked_dirs_followed_without_loops(make_app, data_dir, tmp_path):
    outside = tmp_path / "outside"
    small("a/linked").write(outside)
    (data_dir / "link").symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(data_dir, target_is_directory=True)
    assert names(make_app()) == {"a/linked"}


def test_duplicate_names_native_beats_pulp2_then_first_path(make_app, data_dir, caplog):
    shutil.copy(FIXTURES / "v4" / "dup-native.json", data_dir / "aaa-pulp2.json")
    small("fedora/busybox", tag="from-b").write(data_dir, "b.json")
    small("fedora/busybox", tag="from-c").write(data_dir, "c.json")
    with caplog.at_level(logging.WARNING, logger="crane_fedora"):
        app = make_app()
    repo = app.extensions["crane_fedora"].store.index.repos["fedora/busybox"]
    assert repo.kind == "native" and repo.path == "b.json"
    warn = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert len(warn) == 1 and "aaa-pulp2.json" in warn[0] and "c.json" in warn[0]
    small("other/repo").write(data_dir)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="crane_fedora"):
        refresh(app)  # unrelated change: the same duplicate is not warned about again
    assert not [r for r in caplog.records if "duplicate" in r.getMessage()]
    # the winner goes away: the next native file takes over
    (data_dir / "b.json").unlink()
    refresh(app)
    assert app.extensions["crane_fedora"].store.index.repos["fedora/busybox"].path == "c.json"
    (data_dir / "c.json").unlink()
    refresh(app)
    assert app.extensions["crane_fedora"].store.index.repos["fedora/busybox"].kind == "pulp2"


def test_data_dir_created_late_and_removed(make_app, data_dir):
    shutil.rmtree(data_dir)
    app = make_app()
    client = app.test_client()
    assert client.get("/healthz").status_code == 503
    small("a/late").write(data_dir)
    refresh(app)
    assert client.get("/healthz").status_code == 200
    assert names(app) == {"a/late"}
    shutil.rmtree(data_dir)
    refresh(app)
    assert names(app) == set()
    assert client.get("/healthz").status_code == 503


def test_running_request_keeps_its_snapshot(make_app, data_dir):
    small("a/one").write(data_dir)
    app = make_app()
    store = app.extensions["crane_fedora"].store
    before = store.index
    small("a/two").write(data_dir)
    refresh(app)
    assert store.index is not before
    assert set(before.repos) == {"a/one"}  # the old snapshot is untouched


def test_poller_thread_reloads(data_dir):
    from crane_fedora.app import create_app
    from crane_fedora.config import parse_config

    small("a/one").write(data_dir)
    app = create_app(parse_config(f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 1\n"))
    store = app.extensions["crane_fedora"].store
    assert not any(t.name == "crane-metadata-poller" for t in threading.enumerate())  # not at startup
    try:
        app.test_client().get("/v2/")  # the first request starts it
        assert any(t.name == "crane-metadata-poller" for t in threading.enumerate())
        small("a/two").write(data_dir)
        deadline = time.monotonic() + 5
        while "a/two" not in store.index.repos and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "a/two" in store.index.repos
    finally:
        store.stop()


def test_reload_of_one_file_among_many_serves_its_change(make_app, data_dir):
    """The time this takes is measured in benchmarks (crane_bench: reload after one changed file)."""
    for i in range(300):
        small(f"bulk/r{i}").write(data_dir)
    app = make_app()
    small("bulk/r7", tag="new").write(data_dir)
    refresh(app)
    assert app.test_client().get("/v2/bulk/r7/manifests/new").status_code == 200


def test_subdirectory_added_and_removed(make_app, data_dir):
    small("a/one").write(data_dir)
    app = make_app()
    small("deep/er/two").write(data_dir, "sub/dir/two.json")
    refresh(app)
    assert names(app) == {"a/one", "deep/er/two"}
    shutil.rmtree(data_dir / "sub")
    refresh(app)
    assert names(app) == {"a/one"}


def test_tags_list_not_stale_after_reload(make_app, data_dir):
    n = small("a/one", tag="x")
    n.write(data_dir)
    app = make_app()
    client = app.test_client()
    assert client.get("/v2/a/one/tags/list").json["tags"] == ["x"]
    n.tag("y", n.tags["x"]).write(data_dir)
    refresh(app)
    assert client.get("/v2/a/one/tags/list").json["tags"] == ["x", "y"]
    assert client.head("/v2/a/one/tags/list").headers["Content-Length"] == str(
        len(client.get("/v2/a/one/tags/list").data)
    )
