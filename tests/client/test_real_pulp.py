"""Client and CLI against a real Pulp (pulpcore + pulp-container): promotion, auth, errors, tasks."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import pytest

from pulp_fedora_mirror.client import (
    PulpAuthError,
    PulpHTTPError,
    PulpNotFound,
    TaskFailed,
    TaskTimeout,
)
from tests.harness.ports import free_port

from .helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.pulp


def _creds(pulp, password: str | None = None) -> list[str]:
    return ["--pulp-url", pulp.base_url, "--username", pulp.username, "--password", password or pulp.password]


def _promote_cli(
    pulp, candidate, stable, tmp_path, tag: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    """``fedora-mirror promote --from CANDIDATE --to STABLE --tag TAG FLAGS`` as the admin; exits 0."""
    r = run_cli(
        "promote",
        "--from",
        candidate["name"],
        "--to",
        stable["name"],
        "--tag",
        tag,
        *flags,
        *_creds(pulp),
        home=str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    return r


def _tags(client, repo_href: str) -> dict[str, str]:
    rv = client.request("GET", repo_href)["latest_version_href"]
    page = client.request("GET", "content/container/tags/", params={"repository_version": rv, "limit": 100})
    out = {}
    for tag in page["results"]:
        out[tag["name"]] = client.request("GET", tag["tagged_manifest"])["digest"]
    return out


def test_bad_credentials_exit_3_with_pulps_text(pulp, tmp_path) -> None:
    r = run_cli(
        "promote", "--from", "a", "--to", "b", "--tag", "x", *_creds(pulp, "wrong"), home=str(tmp_path)
    )
    assert_one_line_error(r, 3, "authentication failed (401, user 'admin')", "Invalid username/password.")
    with pytest.raises(PulpAuthError, match="Invalid username/password"):
        pulp.client(password="wrong").find_repository("x")


def test_bad_credentials_from_env(pulp, tmp_path) -> None:
    env = {"PULP_URL": pulp.base_url, "PULP_USERNAME": "nobody", "PULP_PASSWORD": "nope"}
    r = run_cli("publish", "--repository", "s", "--exporter", "e", home=str(tmp_path), env=env)
    assert_one_line_error(r, 3, "user 'nobody'")


def test_unknown_repository_is_exit_2(pulp, tmp_path) -> None:
    name = f"missing-{uuid.uuid4().hex[:6]}"
    r = run_cli("promote", "--from", name, "--to", "b", "--tag", "x", *_creds(pulp), home=str(tmp_path))
    assert_one_line_error(r, 2, f"no container repository named '{name}'")


def test_http_error_carries_pulps_error_text(pulp) -> None:
    with pytest.raises(PulpHTTPError) as info:
        pulp.client().request("POST", "repositories/container/container/", json={})
    assert info.value.status == 400
    assert str(info.value) == (
        "POST /pulp/api/v3/repositories/container/container/ failed: HTTP 400: name: This field is required."
    )
    assert info.value.exit_code == 4


def test_failed_task_raises_with_its_error_description(pulp) -> None:
    c = pulp.client()
    suffix = uuid.uuid4().hex[:8]
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the sync task fails for real
    remote = c.request(
        "POST",
        "remotes/container/container/",
        json={"name": f"dead-{suffix}", "url": dead, "upstream_name": "x"},
    )
    repo = c.request("POST", "repositories/container/container/", json={"name": f"dead-{suffix}"})
    task = c.request("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    seen = []
    with pytest.raises(TaskFailed) as info:
        c.wait(task["task"], progress_callback=seen.append, timeout=60)
    msg = str(info.value)
    assert msg.startswith("task failed: ")
    assert "\n" not in msg
    assert "Cannot connect to host" in msg or "onnect" in msg
    assert info.value.exit_code == 1
    assert seen and seen[-1].state == "failed"


def test_promote_copies_only_the_given_tags(pulp, candidate, stable, tmp_path) -> None:
    c = pulp.client()
    r = _promote_cli(pulp, candidate, stable, tmp_path, "latest")
    assert r.stdout.startswith(f"promoted latest from {candidate['name']} to {stable['name']}: new version ")
    assert "task " in r.stderr  # progress goes to stderr (plain lines: not a TTY)
    cand_tags = _tags(c, candidate["pulp_href"])
    assert set(cand_tags) == {"latest", "v2"}
    assert _tags(c, stable["pulp_href"]) == {"latest": cand_tags["latest"]}

    # Again: nothing to copy, no new version; --json output for scripts.
    r = _promote_cli(pulp, candidate, stable, tmp_path, "latest", "--json")
    out = json.loads(r.stdout)
    assert out["state"] == "completed"
    assert not [h for h in out["created_resources"] if "/versions/" in h]


def test_promote_api_and_no_wait(pulp, candidate, stable, tmp_path) -> None:
    c = pulp.client()
    task = c.promote(candidate["name"], stable["pulp_href"], ["v2", "latest"])
    done = c.wait(task, timeout=60)
    assert done.state == "completed"
    assert any("/versions/1/" in h for h in done.created_resources)
    assert set(_tags(c, stable["pulp_href"])) == {"latest", "v2"}

    r = _promote_cli(pulp, candidate, stable, tmp_path, "v2", "--no-wait")
    href = r.stdout.strip()
    assert href.startswith("/pulp/api/v3/tasks/")
    assert c.wait(href, timeout=60).state == "completed"


def test_wait_timeout_is_a_typed_error(pulp) -> None:
    """A sync from a server that accepts connections but never answers keeps the task running."""
    c = pulp.client()
    suffix = uuid.uuid4().hex[:8]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        remote = c.request(
            "POST",
            "remotes/container/container/",
            json={"name": f"slow-{suffix}", "url": url, "upstream_name": "x"},
        )
        repo = c.request("POST", "repositories/container/container/", json={"name": f"slow-{suffix}"})
        task = c.request("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})["task"]
        try:
            with pytest.raises(TaskTimeout, match=r"after 1\.5s \(it keeps running in Pulp") as info:
                c.wait(task, timeout=1.5)
            assert info.value.task.state in ("waiting", "running")
        finally:
            c.request("PATCH", task, json={"state": "canceled"})
        with pytest.raises(TaskFailed, match="task canceled"):
            c.wait(task, timeout=60)


def test_publish_needs_the_exporter(pulp, stable, tmp_path) -> None:
    """Without pulp_fedora_mirror the endpoint is missing; with it, an unknown exporter name."""
    c = pulp.client()
    with pytest.raises(PulpNotFound) as info:
        c.publish(stable["name"], f"nope-{uuid.uuid4().hex[:6]}")
    assert "no fedora_mirror exporter" in str(info.value)
    r = run_cli(
        "publish", "--repository", stable["name"], "--exporter", "nope", *_creds(pulp), home=str(tmp_path)
    )
    assert_one_line_error(r, 2, "fedora_mirror exporter")


def _has_exporter_endpoint(client) -> bool:
    try:
        client.request("GET", "exporters/fedora_mirror/mirror/", params={"limit": 1})
    except PulpHTTPError:
        return False
    return True


def test_release_promotes_then_exports_that_version(pulp, candidate, stable, tmp_path) -> None:
    """End to end once the plugin is installed in the test Pulp; else the clear "not installed" error."""
    c = pulp.client()
    args = ["release", "--from", candidate["name"], "--to", stable["name"], "--tag", "latest", "--json"]
    if not _has_exporter_endpoint(c):
        r = run_cli(*args, "--exporter", "mirror", *_creds(pulp), home=str(tmp_path))
        assert_one_line_error(r, 2, "is pulp_fedora_mirror installed?")
        # the promotion itself happened before the export was refused
        assert "latest" in _tags(c, stable["pulp_href"])
        return
    assert pulp.export_dir, "the Pulp harness must expose a directory allowed by ALLOWED_EXPORT_PATHS"
    name = f"mirror-{uuid.uuid4().hex[:6]}"
    root = f"{pulp.export_dir.rstrip('/')}/{name}/tree"
    exporter = c.request(
        "POST",
        "exporters/fedora_mirror/mirror/",
        json={
            "name": name,
            "path": root,
            "metadata_path": f"{pulp.export_dir.rstrip('/')}/{name}/metadata",
            "master_url": "https://dl.example.org/pub/containers",
        },
    )
    r = run_cli(*args, "--exporter", name, "--name", "demo/hello", *_creds(pulp), home=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "completed"
    version = next(h for h in out["promote"]["created_resources"] if "/versions/" in h)
    summary = out["export"]["summary"]
    assert summary["name"] == "demo/hello"
    assert set(summary["tags"]) == {"latest"}
    assert exporter["pulp_href"] in out["export"]["pulp_href"]
    assert version  # the export used the promoted version (client.release passes it explicitly)
