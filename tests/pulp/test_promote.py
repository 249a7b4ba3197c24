"""``POST /pulp/api/v3/fedora_mirror/promote/``: Bodhi's three tags in exactly one repository version.

The source is a real sync from docker-registry of an OCI index (two platforms + an attestation
child) tagged ``41-3``, with a cosign-style ``sha256-<hex>.sig`` attachment for the index, and an
atomic signature uploaded through pulp-container's signature extension.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures.push import push_image
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import Registry, uid
from tests.pulp.signing import atomic_signature, cosign_tag, push_cosign_signature

PROMOTE = "fedora_mirror/promote/"


def tags_of(api: PulpApi, version_href: str) -> dict[str, str]:
    """``{tag: manifest digest}`` of a repository version."""
    page = api.ok(
        api.get("content/container/tags/", params={"repository_version": version_href, "limit": 1000}), 200
    )
    out = {}
    for tag in page["results"]:
        out[tag["name"]] = api.ok(api.get(tag["tagged_manifest"]), 200)["digest"]
    return out


def digests_of(api: PulpApi, kind: str, version_href: str) -> set[str]:
    page = api.ok(
        api.get(f"content/container/{kind}/", params={"repository_version": version_href, "limit": 1000}),
        200,
    )
    return {c["digest"] for c in page["results"]}


def latest(api: PulpApi, repo_href: str) -> str:
    return api.ok(api.get(repo_href), 200)["latest_version_href"]


def new_repo(api: PulpApi, prefix: str = "stable") -> dict[str, Any]:
    return api.ok(api.post("repositories/container/container/", {"name": uid(prefix)}), 201)


@pytest.fixture(scope="module")
def build(api: PulpApi, pulp: PulpServer, registry: Registry, tmp_path_factory) -> dict[str, Any]:
    """Candidate repository with build ``41-3`` (an OCI index), its .sig tag and an atomic signature."""
    image = registry.images["multi-oci"]
    name = f"promo/{uid('app')}"
    host = registry.url.split("://", 1)[1]
    push_image(image, host, repository=name, tag="41-3")
    sig_digest = push_cosign_signature(registry.url, name, image.digest)
    other = registry.images["single-oci"]  # an older build, to be replaced in the destination
    push_image(other, host, repository=name, tag="41-2")
    remote = api.ok(
        api.post(
            "remotes/container/container/",
            {"name": uid("cand"), "url": registry.url, "upstream_name": name, "policy": "immediate"},
        ),
        201,
    )
    repo = new_repo(api, "cand")
    api.run(api.post(repo["pulp_href"] + "sync/", {"remote": remote["pulp_href"], "mirror": True}))
    base_path = uid("cand")
    api.run(
        api.post(
            "distributions/container/container/",
            {"name": base_path, "base_path": base_path, "repository": repo["pulp_href"]},
        )
    )
    body = atomic_signature(tmp_path_factory.mktemp("gnupg"), f"registry.example.org/{name}", image.digest)
    r = requests.put(
        f"{pulp.base_url}/extensions/v2/{base_path}/signatures/{image.digest}",
        json=body,
        auth=(ADMIN_USER, ADMIN_PASSWORD),
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text
    version = latest(api, repo["pulp_href"])
    assert tags_of(api, version) == {
        "41-3": image.digest,
        "41-2": other.digest,
        cosign_tag(image.digest): sig_digest,
    }
    assert (
        len(
            api.ok(api.get("content/container/signatures/", params={"repository_version": version}), 200)[
                "results"
            ]
        )
        == 1
    )
    return {"repo": repo, "image": image, "other": other, "sig_digest": sig_digest, "version": version}


def versions(api: PulpApi, repo_href: str) -> list[int]:
    page = api.ok(api.get(repo_href + "versions/", params={"limit": 1000}), 200)
    return sorted(v["number"] for v in page["results"])


def _promote(
    api: PulpApi, build: dict[str, Any], destination: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """Run a promote task from the build's repository (its latest version) into ``destination``."""
    body = {
        "source_repository": build["repo"]["pulp_href"],
        "destination_repository": destination["pulp_href"],
    }
    return api.run(api.post(PROMOTE, {**body, **fields}))


def test_three_tags_one_version_with_signatures(api: PulpApi, build: dict[str, Any]) -> None:
    image = build["image"]
    stable = new_repo(api)
    # The destination already serves an older build as 41 and latest.
    _promote(api, build, stable, tags=["41-2"], aliases=["41", "latest"])
    assert versions(api, stable["pulp_href"]) == [0, 1]
    assert set(tags_of(api, latest(api, stable["pulp_href"])).values()) == {build["other"].digest}

    task = _promote(api, build, stable, tags=["41-3"], aliases=["41", "latest"])
    assert versions(api, stable["pulp_href"]) == [0, 1, 2]  # exactly one new version
    v2 = latest(api, stable["pulp_href"])
    assert v2 in task["created_resources"]
    assert tags_of(api, v2) == {
        "41-2": build["other"].digest,
        "41-3": image.digest,
        "41": image.digest,
        "latest": image.digest,
        cosign_tag(image.digest): build["sig_digest"],
    }
    manifests = digests_of(api, "manifests", v2)
    assert set(image.manifests) <= manifests  # index, both platforms, the attestation child
    assert build["sig_digest"] in manifests
    assert set(image.blob_digests) <= digests_of(api, "blobs", v2)
    sigs = api.ok(api.get("content/container/signatures/", params={"repository_version": v2}), 200)
    assert [s["signed_manifest"] for s in sigs["results"]] and len(sigs["results"]) == 1

    # The same request again changes nothing: no new version.
    api.run(
        api.post(
            PROMOTE,
            {
                "source_repository_version": build["version"],
                "destination_repository": stable["pulp_href"],
                "tags": ["41-3"],
                "aliases": ["41", "latest"],
            },
        )
    )
    assert versions(api, stable["pulp_href"]) == [0, 1, 2]


def test_by_digest_to_testing(api: PulpApi, build: dict[str, Any]) -> None:
    testing = new_repo(api, "testing")
    _promote(api, build, testing, digest=build["image"].digest, aliases=["41-3", "testing"])
    assert versions(api, testing["pulp_href"]) == [0, 1]
    tags = tags_of(api, latest(api, testing["pulp_href"]))
    assert tags == {
        "41-3": build["image"].digest,
        "testing": build["image"].digest,
        cosign_tag(build["image"].digest): build["sig_digest"],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tags": ["nope"], "aliases": ["latest"]}, "tag 'nope' is not in"),
        ({"digest": "sha256:" + "0" * 64, "aliases": ["latest"]}, "is not in"),
        ({"digest": "sha256:" + "0" * 64}, "needs at least one alias"),
        ({"tags": ["41-3", "41-2"], "aliases": ["latest"]}, "exactly one tag"),
        ({"tags": ["41-3"], "aliases": [".bad"]}, "is not a valid tag"),
        ({"tags": ["41-3"], "aliases": ["41-3"]}, "given twice"),
        ({}, "Give the build"),
    ],
)
def test_bad_requests_change_nothing(api: PulpApi, build: dict[str, Any], body, message) -> None:
    stable = new_repo(api)
    r = api.post(
        PROMOTE,
        {
            "source_repository": build["repo"]["pulp_href"],
            "destination_repository": stable["pulp_href"],
            **body,
        },
    )
    assert r.status_code == 400, r.text
    assert message in r.text
    assert versions(api, stable["pulp_href"]) == [0]


def test_needs_modify_permission_on_destination(
    api: PulpApi, pulp: PulpServer, build: dict[str, Any], tmp_path: Path
) -> None:
    stable = new_repo(api)
    name, password = uid("user"), "pw-" + uid("x")
    user = api.ok(api.post("users/", {"username": name, "password": password}), 201)
    try:
        api.ok(
            api.post(
                user["pulp_href"] + "roles/",
                {"role": "container.containerrepository_viewer", "content_object": None},
            ),
            201,
        )
        viewer = PulpApi(pulp.base_url, name, password)
        r = viewer.post(
            PROMOTE,
            {
                "source_repository": build["repo"]["pulp_href"],
                "destination_repository": stable["pulp_href"],
                "tags": ["41-3"],
            },
        )
        assert r.status_code == 403, r.text
        assert f"You may not modify the content of repository '{stable['name']}'" in r.json()["detail"]
        assert versions(api, stable["pulp_href"]) == [0]
    finally:
        api.delete(user["pulp_href"])


def test_failed_task_leaves_destination_unchanged(
    api: PulpApi, pulp: PulpServer, build: dict[str, Any]
) -> None:
    """A promote task that fails for real (its source version vanished) changes nothing.

    Ordering without mocks: a sync from a server that never answers holds the destination; the
    promote task queues behind it; the source version is deleted meanwhile (in the database, with
    pulpcore-manager: a delete task would queue behind the promote, which claims the source); then
    the sync is canceled and the promote task runs.
    """
    src, stable = new_repo(api, "src"), new_repo(api)
    _promote(api, build, src, tags=["41-3"])
    src_v1 = latest(api, src["pulp_href"])
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        remote = api.ok(
            api.post(
                "remotes/container/container/",
                {
                    "name": uid("silent"),
                    "url": f"http://127.0.0.1:{silent.getsockname()[1]}",
                    "upstream_name": "x",
                },
            ),
            201,
        )
        blocker = api.ok(api.post(stable["pulp_href"] + "sync/", {"remote": remote["pulp_href"]}), 202)[
            "task"
        ]
        promote = api.ok(
            api.post(
                PROMOTE,
                {
                    "source_repository_version": src_v1,
                    "destination_repository": stable["pulp_href"],
                    "tags": ["41-3"],
                    "aliases": ["41", "latest"],
                },
            ),
            202,
        )["task"]
        pk = src_v1.rstrip("/").split("/")[-3]
        number = int(src_v1.rstrip("/").split("/")[-1])
        pulp.manage(
            "shell",
            "-c",
            "from pulpcore.app.models import RepositoryVersion; "
            f"RepositoryVersion.objects.get(repository__pk='{pk}', number={number}).delete()",
        )
        assert api.ok(api.get(promote), 200)["state"] == "waiting"
        api.ok(api.patch(blocker, {"state": "canceled"}), 200)
        task = api.wait_task(promote, check=False)
    assert task["state"] == "failed", task
    assert "does not exist" in task["error"]["description"]
    assert versions(api, stable["pulp_href"]) == [0]
    assert api.ok(api.get(stable["pulp_href"]), 200)["latest_version_href"].endswith("/versions/0/")
