"""An exporter path repointed (symlink) outside ALLOWED_EXPORT_PATHS after validation: export and
prune check it again and refuse, and nothing outside is touched."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pulp.client import PulpApi
from tests.pulp.conftest import SyncedRepo


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A directory outside ALLOWED_EXPORT_PATHS."""
    with tempfile.TemporaryDirectory(prefix="outside-") as d:
        yield Path(d)


def test_prune_revalidates_a_repointed_path(
    api: PulpApi, make_exporter: Callable[..., Any], export_dirs: tuple[Path, Path], outside_dir: Path
) -> None:
    """A symlinked path moved outside ALLOWED_EXPORT_PATHS after creation: prune refuses, like export."""
    tree, _meta = export_dirs
    link = tree.parent / "tree-link"
    os.symlink(tree, link)
    exp = make_exporter(path=str(link), prune_grace=0)
    os.unlink(link)
    os.symlink(outside_dir, link)
    victim = outside_dir / "blobs" / "sha256" / "ab"
    victim.mkdir(parents=True)
    (victim / ("ab" + "0" * 62)).write_bytes(b"not ours")
    resp = api.post(exp["pulp_href"] + "prune/", {"dry_run": False})
    if resp.status_code == 202:
        api.wait_task(resp.json()["task"], check=False)
    assert (victim / ("ab" + "0" * 62)).exists(), "prune deleted a file outside ALLOWED_EXPORT_PATHS"
    assert resp.status_code == 400, resp.text


def test_export_revalidates_a_repointed_path(
    api: PulpApi,
    make_exporter: Callable[..., Any],
    export_dirs: tuple[Path, Path],
    outside_dir: Path,
    synced_repo: SyncedRepo,
) -> None:
    tree, _meta = export_dirs
    link = tree.parent / "tree-link"
    os.symlink(tree, link)
    exp = make_exporter(path=str(link))
    os.unlink(link)
    os.symlink(outside_dir, link)
    body = {"repository_version": synced_repo.version_href, "name": "repointed/x"}
    assert api.post(exp["pulp_href"] + "exports/", body).status_code == 400
    assert list(outside_dir.iterdir()) == []
