"""Exporter CRUD over REST and the 400s users get for bad configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import EXPORTERS, uid


def test_endpoint_registered(api: PulpApi) -> None:
    status = api.ok(api.get("status/"), 200)
    assert "fedora_mirror" in {v["component"] for v in status["versions"]}
    api.ok(api.get(EXPORTERS), 200)


def test_create_retrieve_list_update_delete(
    api: PulpApi, make_exporter: Any, export_dirs: tuple[Path, Path]
) -> None:
    exp = make_exporter(master_url="https://dl.example.org/pub/containers", mirror_url=None)
    href = exp["pulp_href"]
    assert href.startswith("/pulp/api/v3/exporters/fedora_mirror/mirror/")
    assert exp["master_url"] == "https://dl.example.org/pub/containers/"  # slash appended
    assert exp["mirror_url"] is None
    assert exp["module"] is None
    assert exp["prune_grace"] == 7 * 24 * 3600
    assert exp["allow_protected"] is False
    assert exp["path"] == str(export_dirs[0])
    assert exp["metadata_path"] == str(export_dirs[1])

    got = api.ok(api.get(href), 200)
    assert got == exp
    listed = api.ok(api.get(EXPORTERS, params={"name": exp["name"]}), 200)
    assert [e["pulp_href"] for e in listed["results"]] == [href]

    api.run(api.patch(href, {"module": "containers-test", "prune_grace": 60, "allow_protected": True}))
    got = api.ok(api.get(href), 200)
    assert (got["module"], got["prune_grace"], got["allow_protected"]) == ("containers-test", 60, True)

    api.run(api.delete(href))
    assert api.get(href).status_code == 404


def test_duplicate_name(api: PulpApi, make_exporter: Any) -> None:
    exp = make_exporter()
    resp = api.post(
        EXPORTERS, {**{k: exp[k] for k in ("path", "metadata_path", "master_url")}, "name": exp["name"]}
    )
    assert resp.status_code == 400
    assert "name" in resp.json()


def _bad(api: PulpApi, export_dirs: tuple[Path, Path], **overrides: Any) -> dict[str, Any]:
    body = {
        "name": uid("bad"),
        "path": str(export_dirs[0]),
        "metadata_path": str(export_dirs[1]),
        "master_url": "https://dl.example.org/pub/containers/",
    }
    body.update(overrides)
    resp = api.post(EXPORTERS, body)
    assert resp.status_code == 400, resp.text
    return resp.json()


def test_path_outside_allowed(api: PulpApi, export_dirs: tuple[Path, Path], pulp: PulpServer) -> None:
    err = _bad(api, export_dirs, path="/srv/not-allowed/containers")
    assert "is not an allowed export path" in err["path"][0]
    err = _bad(api, export_dirs, metadata_path="/tmp/metadata")
    assert "is not an allowed export path" in err["metadata_path"][0]
    # ALLOWED_EXPORT_PATHS ends in "/": a sibling sharing the prefix is not allowed (pitfall 4).
    evil = str(pulp.export_root) + "-evil/containers"
    assert "is not an allowed export path" in _bad(api, export_dirs, path=evil)["path"][0]
    # ".." resolving outside is caught too (realpath).
    escape = str(pulp.export_root / ".." / "media")
    assert "is not an allowed export path" in _bad(api, export_dirs, path=escape)["path"][0]


def test_path_is_a_file(api: PulpApi, export_dirs: tuple[Path, Path]) -> None:
    f = export_dirs[0].parent / "a-file"
    f.write_text("x")
    assert "must be a directory path" in _bad(api, export_dirs, path=str(f))["path"][0]


def test_metadata_inside_tree(api: PulpApi, export_dirs: tuple[Path, Path]) -> None:
    tree = export_dirs[0]
    err = _bad(api, export_dirs, metadata_path=str(tree / "metadata"))
    assert "must not contain each other" in err["metadata_path"][0]
    err = _bad(api, export_dirs, metadata_path=str(tree))
    assert "must not contain each other" in err["metadata_path"][0]


def test_url_validation(api: PulpApi, export_dirs: tuple[Path, Path], make_exporter: Any) -> None:
    for bad in (
        "ftp://dl.example.org/pub/",
        "/pub/containers/",
        "dl.example.org/pub/",
        "https:///x/",
        "https://dl.example.org/pub/?x=1",
        "https://u:p@dl.example.org/pub/",
        # issue 13 item 3: accepted before, refused by every crane (layout.url_problem)
        "https://dl.example.org/pub/\u00e9/",
        "https://dl.example.org/pub/?",
        "https://dl.example.org/pub/#",
        "https://dl.example.org/pub\\x/",
    ):
        err = _bad(api, export_dirs, master_url=bad)
        assert "master_url" in err and "master_url" in err["master_url"][0], (bad, err)
    err = _bad(api, export_dirs, mirror_url="mirror.example.org/pub/")
    assert "absolute http(s) URL" in err["mirror_url"][0]
    exp = make_exporter(mirror_url="http://mirror.example.org/pub/containers")
    assert exp["mirror_url"] == "http://mirror.example.org/pub/containers/"


def test_module_validation(api: PulpApi, export_dirs: tuple[Path, Path]) -> None:
    assert "invalid module name" in _bad(api, export_dirs, module="a/b")["module"][0]
    assert "invalid module name" in _bad(api, export_dirs, module=".hidden")["module"][0]


def test_prune_grace_not_negative(api: PulpApi, export_dirs: tuple[Path, Path]) -> None:
    assert "prune_grace" in _bad(api, export_dirs, prune_grace=-1)


def test_shared_tree_needs_shared_metadata(
    api: PulpApi, make_exporter: Any, export_dirs: tuple[Path, Path]
) -> None:
    """Two exporters may write one tree only with one metadata dir (prune safety)."""
    first = make_exporter()
    other_meta = export_dirs[1].parent / "other-metadata"
    err = _bad(api, export_dirs, metadata_path=str(other_meta))
    assert f"overlaps the tree of exporter '{first['name']}'" in err["path"][0]
    err = _bad(api, export_dirs, path=str(export_dirs[0] / "sub"), metadata_path=str(other_meta))
    assert "overlaps the tree" in err["path"][0]
    second = make_exporter()  # same tree, same metadata: fine
    assert second["path"] == first["path"]
    # Moving the tree of an unrelated exporter onto it is refused too.
    third = make_exporter(path=str(export_dirs[0].parent / "t3"), metadata_path=str(other_meta))
    resp = api.patch(third["pulp_href"], {"path": first["path"]})
    assert resp.status_code == 400 and "overlaps the tree" in resp.text


def test_metadata_of_one_exporter_never_inside_the_tree_of_another(
    api: PulpApi, make_exporter: Any, export_dirs: tuple[Path, Path]
) -> None:
    """Metadata is never mirrored (docs/layout.md §1), whichever exporter the tree belongs to."""
    tree, meta = export_dirs
    make_exporter()  # tree: base/containers, metadata: base/metadata
    base = tree.parent
    # A tree that is, or lies inside, the first exporter's metadata directory.
    for path in (meta, meta / "sub"):
        err = _bad(api, export_dirs, path=str(path), metadata_path=str(base / "m2"))
        assert "must not contain" in str(err)
    # A metadata directory inside the first exporter's tree.
    err = _bad(api, export_dirs, path=str(base / "t2"), metadata_path=str(tree / "meta"))
    assert "must not contain" in str(err)


def test_relative_paths_are_refused(api: PulpApi, export_dirs: tuple[Path, Path], pulp: PulpServer) -> None:
    """A relative path passes pulpcore's check relative to the API's cwd, but the worker resolves
    it against its own cwd: only absolute paths mean the same directory to both."""
    tree, meta = export_dirs
    rel_tree = os.path.relpath(tree, pulp.state_dir)
    rel_meta = os.path.relpath(meta, pulp.state_dir)
    assert "path" in _bad(api, export_dirs, path=rel_tree)
    assert "metadata_path" in _bad(api, export_dirs, metadata_path=rel_meta)
