"""Role-based access: locked roles exist, non-admins need them, owners get their exporters."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import EXPORTERS, uid

ROLES = (
    "fedora_mirror.mirrorexporter_creator",
    "fedora_mirror.mirrorexporter_owner",
    "fedora_mirror.mirrorexporter_viewer",
)


@pytest.fixture
def make_user(api: PulpApi, pulp: PulpServer) -> Iterator[Callable[..., PulpApi]]:
    """Factory: a fresh user with the given model-level roles, as a REST client."""
    hrefs: list[str] = []

    def make(*roles: str) -> PulpApi:
        name, password = uid("user"), secrets.token_urlsafe(16)
        user = api.ok(api.post("users/", {"username": name, "password": password}), 201)
        hrefs.append(user["pulp_href"])
        for role in roles:
            api.ok(api.post(user["pulp_href"] + "roles/", {"role": role, "content_object": None}), 201)
        return PulpApi(pulp.base_url, name, password)

    yield make
    for href in hrefs:
        api.delete(href)


def _body(export_dirs: tuple[Path, Path]) -> dict[str, Any]:
    return {
        "name": uid("rbac"),
        "path": str(export_dirs[0]),
        "metadata_path": str(export_dirs[1]),
        "master_url": "https://dl.example.org/pub/containers/",
    }


def test_locked_roles_exist(api: PulpApi) -> None:
    for role in ROLES:
        found = api.ok(api.get("roles/", params={"name": role}), 200)["results"]
        assert len(found) == 1 and found[0]["locked"] is True, role
    owner = api.ok(api.get("roles/", params={"name": ROLES[1]}), 200)["results"][0]
    assert set(owner["permissions"]) == {
        "fedora_mirror.view_mirrorexporter",
        "fedora_mirror.change_mirrorexporter",
        "fedora_mirror.delete_mirrorexporter",
        "fedora_mirror.export_mirrorexporter",
        "fedora_mirror.manage_roles_mirrorexporter",
    }


def test_user_without_role(
    api: PulpApi, make_user: Callable[..., PulpApi], make_exporter: Any, export_dirs: tuple[Path, Path]
) -> None:
    admin_exp = make_exporter()
    nobody = make_user()
    assert nobody.post(EXPORTERS, _body(export_dirs)).status_code == 403
    assert nobody.ok(nobody.get(EXPORTERS), 200)["count"] == 0  # scoped: sees nothing
    assert nobody.get(admin_exp["pulp_href"]).status_code == 404
    # the exporter itself is invisible to them (404); its nested exports/ list is a 403
    assert nobody.patch(admin_exp["pulp_href"], {"prune_grace": 1}).status_code == 404
    assert nobody.delete(admin_exp["pulp_href"]).status_code == 404
    assert nobody.post(admin_exp["pulp_href"] + "prune/", {"dry_run": True}).status_code == 404
    assert nobody.get(admin_exp["pulp_href"] + "exports/").status_code == 403
    assert nobody.post(admin_exp["pulp_href"] + "exports/", {}).status_code == 403


def test_creator_owns_what_it_creates(
    api: PulpApi, make_user: Callable[..., PulpApi], export_dirs: tuple[Path, Path]
) -> None:
    creator = make_user(ROLES[0])
    exp = creator.ok(creator.post(EXPORTERS, _body(export_dirs)), 201)
    href = exp["pulp_href"]
    # The creation hook gave the creator the owner role on this object only.
    assert creator.ok(creator.get(EXPORTERS), 200)["count"] == 1
    assert creator.ok(creator.get(href + "exports/"), 200)["count"] == 0
    perms = creator.ok(creator.get(href + "my_permissions/"), 200)["permissions"]
    assert "fedora_mirror.export_mirrorexporter" in perms
    roles = api.ok(api.get(href + "list_roles/"), 200)["roles"]
    assert {r["role"] for r in roles} == {ROLES[1]}

    other = make_user(ROLES[0])
    assert other.get(href).status_code == 404

    viewer = make_user(ROLES[2])  # model-wide viewer: sees it, cannot change it
    assert viewer.ok(viewer.get(href), 200)["name"] == exp["name"]
    assert viewer.patch(href, {"prune_grace": 1}).status_code == 403

    creator.run(creator.patch(href, {"prune_grace": 10}))
    creator.run(creator.delete(href))
    assert api.get(href).status_code == 404


def test_owner_exports_only_repositories_it_may_view(
    api: PulpApi, make_user: Callable[..., PulpApi], export_dirs: tuple[Path, Path], synced_repo: Any
) -> None:
    """Exporting needs the exporter's export permission *and* view permission on the repository."""
    creator = make_user(ROLES[0])
    exp = creator.ok(creator.post(EXPORTERS, _body(export_dirs)), 201)
    body = {"repository_version": synced_repo.version_href, "name": "rbac/export"}
    assert creator.post(exp["pulp_href"] + "exports/", body).status_code == 403

    user_href = api.ok(api.get("users/", params={"username": creator.s.auth[0]}), 200)["results"][0][
        "pulp_href"
    ]
    api.ok(
        api.post(
            user_href + "roles/",
            {"role": "container.containerrepository_viewer", "content_object": synced_repo.href},
        ),
        201,
    )
    task = creator.run(creator.post(exp["pulp_href"] + "exports/", body))
    assert task["state"] == "completed"
    assert creator.ok(creator.get(exp["pulp_href"] + "exports/"), 200)["count"] == 1
    creator.run(creator.delete(exp["pulp_href"]))


def test_creator_cannot_take_over_another_users_tree(
    api: PulpApi, make_user: Callable[..., PulpApi], export_dirs: tuple[Path, Path]
) -> None:
    """A second creator may not point an exporter at a tree or metadata directory it cannot change.

    Otherwise it could export its own images under the first owner's registry names (overwriting
    their metadata) or prune that tree with prune_grace 0, and the error must not name the other
    exporter either.
    """
    alice = make_user(ROLES[0])
    mine = alice.ok(alice.post(EXPORTERS, _body(export_dirs)), 201)
    mallory = make_user(ROLES[0])
    resp = mallory.post(EXPORTERS, _body(export_dirs))  # same tree, same metadata
    assert resp.status_code == 400, resp.text
    assert mine["name"] not in resp.text
    # Only the metadata directory (own tree): would let it replace alice's metadata files.
    body = _body(export_dirs)
    body["path"] = str(export_dirs[0].parent / "mallory-tree")
    resp = mallory.post(EXPORTERS, body)
    assert resp.status_code == 400, resp.text
    assert mine["name"] not in resp.text
    # Alice herself (owner of the first) may still share her tree.
    second = alice.ok(alice.post(EXPORTERS, _body(export_dirs)), 201)
    alice.run(alice.delete(second["pulp_href"]))
    alice.run(alice.delete(mine["pulp_href"]))


def test_export_records_of_another_exporter_not_reachable_through_own(
    api: PulpApi,
    make_user: Callable[..., PulpApi],
    make_exporter: Any,
    export_dirs: tuple[Path, Path],
    synced_repo: Any,
) -> None:
    """An owner's exporter URL does not reach (read or delete) another exporter's export records."""
    admin_exp = make_exporter()
    api.run(
        api.post(
            admin_exp["pulp_href"] + "exports/",
            {"repository_version": synced_repo.version_href, "name": "rbac/other"},
        )
    )
    record = api.ok(api.get(admin_exp["pulp_href"] + "exports/"), 200)["results"][0]
    record_id = record["pulp_href"].rstrip("/").rsplit("/", 1)[1]
    creator = make_user(ROLES[0])
    body = _body(export_dirs)
    body["path"], body["metadata_path"] = str(export_dirs[0].parent / "c"), str(export_dirs[0].parent / "m")
    mine = creator.ok(creator.post(EXPORTERS, body), 201)
    via_mine = f"{mine['pulp_href']}exports/{record_id}/"
    assert creator.get(via_mine).status_code == 404
    assert creator.delete(via_mine).status_code == 404
    assert api.get(record["pulp_href"]).status_code == 200
    creator.run(creator.delete(mine["pulp_href"]))


def test_only_an_admin_lets_protected_content_into_a_tree(
    api: PulpApi, make_user: Callable[..., PulpApi], export_dirs: tuple[Path, Path]
) -> None:
    """An exporter owner may view a private repository, but publishing it to every mirror is an
    administrator's decision: turning ``allow_protected`` on needs a superuser."""
    creator = make_user(ROLES[0])
    resp = creator.post(EXPORTERS, {**_body(export_dirs), "allow_protected": True})
    assert resp.status_code == 400, resp.text
    assert "Only an administrator" in resp.json()["allow_protected"][0]
    exp = creator.ok(creator.post(EXPORTERS, _body(export_dirs)), 201)
    resp = creator.patch(exp["pulp_href"], {"allow_protected": True})
    assert resp.status_code == 400 and "Only an administrator" in resp.text
    # an administrator may; the owner may then change other fields (keeping the flag) as before
    api.run(api.patch(exp["pulp_href"], {"allow_protected": True}))
    assert api.ok(api.get(exp["pulp_href"]), 200)["allow_protected"] is True
    full = {**_body(export_dirs), "name": exp["name"], "allow_protected": True, "prune_grace": 5}
    creator.run(creator.request("PUT", exp["pulp_href"], json=full))
    got = api.ok(api.get(exp["pulp_href"]), 200)
    assert got["allow_protected"] is True and got["prune_grace"] == 5
    creator.run(creator.delete(exp["pulp_href"]))


def test_promote_needs_copy_tags_rights(
    api: PulpApi, make_user: Callable[..., PulpApi], synced_repo: Any
) -> None:
    """``fedora_mirror/promote/`` asks what copy_tags asks: modify the destination, read the
    source. Anonymous 401, a user without roles 403, a content manager may; a body without a
    source is a 400."""
    dest = api.ok(api.post("repositories/container/container/", {"name": uid("promote")}), 201)
    body = {
        "source_repository": synced_repo.href,
        "destination_repository": dest["pulp_href"],
        "tags": ["latest"],
    }
    try:
        anonymous = PulpApi(api.base_url, "", "")
        anonymous.s.auth = None
        assert anonymous.post("fedora_mirror/promote/", body).status_code == 401
        nobody = make_user()
        r = nobody.post("fedora_mirror/promote/", body)
        assert r.status_code == 403, r.text
        manager = make_user("container.containerrepository_content_manager")
        task = manager.run(manager.post("fedora_mirror/promote/", body))
        assert task["state"] == "completed"
        assert [h for h in task["created_resources"] if "/versions/1/" in h]
        bad = api.post(
            "fedora_mirror/promote/", {"destination_repository": dest["pulp_href"], "tags": ["latest"]}
        )
        assert bad.status_code == 400, bad.text
    finally:
        api.delete(dest["pulp_href"])
