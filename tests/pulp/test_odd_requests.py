"""Odd export and exporter requests: every one is a 4xx, never a 500."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import EXPORTERS, SyncedRepo, uid

ZERO = "00000000-0000-0000-0000-000000000000"
#: pulp_fedora_mirror.app.serializers.MAX_TAGS (not imported: it needs Django set up)
MAX_TAGS = 256


def test_odd_export_requests_are_400(api: PulpApi, make_exporter: Any, synced_repo: SyncedRepo) -> None:
    href = make_exporter()["pulp_href"] + "exports/"
    rv = synced_repo.version_href
    bodies: list[Any] = [
        {"repository": 123},
        {"repository": ["x"]},
        {"repository": {"a": 1}},
        {"repository_version": 5},
        {"repository_version": rv + "../"},
        {"repository_version": rv.replace("/versions/1/", "/versions/999/")},
        {"repository_version": f"/pulp/api/v3/repositories/file/file/{ZERO}/versions/0/"},
        {"repository": f"/pulp/api/v3/repositories/file/file/{ZERO}/"},
        {"repository": "/pulp/api/v3/remotes/container/container/00000000-0000-0000-0000-000000000000/"},
        {"repository": "/pulp/api/v3/repositories/container/container/not-a-uuid/"},
        {"repository_version": rv, "name": {"a": 1}},
        {"repository_version": rv, "name": ["a"]},
        {"repository_version": rv, "name": "a" * 5000},
        {"repository_version": rv, "name": "a/" * 200 + "a"},
        {"repository_version": rv, "name": "../etc"},
        # valid grammar, but the metadata file's temp name (".<c>.json.tmp-<12>") exceeds NAME_MAX
        {"repository_version": rv, "name": "fedora/" + "a" * 240},
        {"repository_version": rv, "name": "a\nb"},
        {"repository_version": rv, "name": "a\x00b"},
        {"repository_version": rv, "name": ""},
        {"repository_version": rv, "repository": synced_repo.href},
        {"repository": "prn:x"},
        {"repository": "prn:container.containerrepository:not-a-uuid"},
        {"repository": "prn:container.containerrepository:00000000-0000-0000-0000-000000000000"},
        {"repository_version": "prn:core.repositoryversion:00000000-0000-0000-0000-000000000000"},
        {"repository": "prn:nosuch.model:00000000-0000-0000-0000-000000000000"},
        [],
        "x",
    ]
    bad = []
    for body in bodies:
        resp = api.request("post", href, json=body)
        if resp.status_code != 400:
            bad.append((body, resp.status_code, resp.text[:200]))
    assert bad == [], "\n".join(repr(b)[:250] for b in bad)


def test_odd_exporter_requests_are_400_and_never_echo_a_password(
    api: PulpApi, export_dirs: tuple[Path, Path]
) -> None:
    tree, meta = export_dirs
    good = {
        "name": "odd",
        "path": str(tree),
        "metadata_path": str(meta),
        "master_url": "https://dl.example.org/pub/containers/",
    }
    overrides: list[dict[str, Any]] = [
        {"path": "relative/dir"},
        {"path": str(tree) + "\x00x"},
        {"path": ["x"]},
        {"path": str(tree.parent) + "/../../../../etc"},
        {"metadata_path": "/"},
        {"master_url": "file:///etc/passwd"},
        {"master_url": "https://user:pw@dl.example.org/"},
        {"master_url": "javascript:alert(1)"},
        {"master_url": "https://"},
        {"master_url": "https://dl.example.org/a b/"},
        {"master_url": "https://dl.example.org/\n/"},
        {"mirror_url": "ftp://x.example.org/"},
        {"module": "../x"},
        {"module": "a" * 5000},
        {"prune_grace": 2**63},
        {"prune_grace": "x"},
        {"allow_protected": "maybe"},
    ]
    bad = []
    for o in overrides:
        resp = api.request("post", EXPORTERS, json={**good, "name": uid("odd"), **o})
        if resp.status_code == 201:
            api.run(api.delete(resp.json()["pulp_href"]))
        if resp.status_code != 400 or "pw@" in resp.text:
            bad.append((o, resp.status_code, resp.text[:200]))
    assert bad == [], "\n".join(repr(b)[:250] for b in bad)


@pytest.fixture
def plain_user(api: PulpApi, pulp: PulpServer) -> Iterator[PulpApi]:
    """A user without any role."""
    name, password = uid("user"), secrets.token_urlsafe(16)
    user = api.ok(api.post("users/", {"username": name, "password": password}), 201)
    yield PulpApi(pulp.base_url, name, password)
    api.delete(user["pulp_href"])


@pytest.mark.parametrize("pk", ["not-a-uuid", "1", "00000000-0000-0000-0000-000000000000"])
def test_odd_exporter_id_in_the_exports_url_is_404(api: PulpApi, plain_user: PulpApi, pk: str) -> None:
    """A malformed or unknown exporter id in the URL is a 404, never a 500, for any user."""
    href = f"{EXPORTERS}{pk}/exports/"
    for client in (api, plain_user):
        assert client.get(href).status_code == 404, (client.s.auth[0], pk)
        assert client.post(href, {"repository": "x"}).status_code == 404, (client.s.auth[0], pk)


def test_odd_promote_requests_are_400(api: PulpApi, synced_repo: SyncedRepo) -> None:
    """Odd tag and alias items behind valid repository hrefs (found by fuzzing the endpoint): a tag
    that is a list, an object or a boolean was a 500 (KeyError in the error message template)."""
    dest = api.ok(api.post("repositories/container/container/", {"name": uid("odd-dest")}), 201)
    valid = {
        "source_repository_version": synced_repo.version_href,
        "destination_repository": dest["pulp_href"],
    }
    digest = {"digest": "sha256:" + "0" * 64}
    bodies: list[dict[str, Any]] = [
        {"tags": [[]]},
        {"tags": [{}]},
        {"tags": [True]},
        {"tags": [None]},
        {"tags": ["latest"], "aliases": [[]]},
        {"tags": ["latest"], "aliases": [{"a": 1}]},
        {**digest, "aliases": [False]},
        {"tags": "latest"},
        {"tags": ["latest"], "aliases": "41"},
        {"digest": []},
        {"digest": {"a": 1}},
        {"source_repository": [], "tags": ["latest"]},
        {"destination_repository": {}, "tags": ["latest"]},
    ]
    bad = []
    for body in bodies:
        resp = api.request("post", "fedora_mirror/promote/", json={**valid, **body})
        if resp.status_code != 400:
            bad.append((body, resp.status_code, resp.text[:200]))
    assert bad == [], "\n".join(repr(b)[:250] for b in bad)
    # The message names the offending value (it used to show a literal '{value}').
    body = {**valid, "tags": ["latest"], "aliases": ["a b"]}
    resp = api.request("post", "fedora_mirror/promote/", json=body)
    assert resp.status_code == 400, resp.text
    message = "'a b' is not a valid tag: ASCII letters, digits, '_', '.', '-', not starting with '.' or '-'."
    assert resp.json() == {"aliases": {"0": [message]}}
    # A bound on the lists: a build has a handful of tags, and each is checked before dispatching.
    body = {**valid, "tags": ["latest"], "aliases": [f"a{i}" for i in range(MAX_TAGS + 1)]}
    resp = api.request("post", "fedora_mirror/promote/", json=body)
    assert resp.status_code == 400, resp.text
    assert "aliases" in resp.json() and str(MAX_TAGS) in resp.text
    assert api.ok(api.get(dest["pulp_href"]), 200)["latest_version_href"].endswith("/versions/0/")
