"""``fedora-mirror promote|release`` and ``PulpClient`` with Bodhi's tag scheme, against a real Pulp.

One build, given by tag or digest, gets all its tags (``--alias``) in exactly one new repository
version, and ``release`` exports that version.
"""

from __future__ import annotations

import json
import uuid

import pytest

from pulp_fedora_mirror.client import PulpClient, PulpConfigError, PulpNotFound

from .helpers import assert_one_line_error, run_cli
from .test_real_pulp import _creds, _tags

pytestmark = pytest.mark.pulp


def _versions(client, repo_href: str) -> list[int]:
    page = client.request("GET", repo_href + "versions/", params={"limit": 100})
    return sorted(v["number"] for v in page["results"])


def _exporter(pulp, client) -> dict:
    assert pulp.export_dir, "the Pulp harness must expose a directory allowed by ALLOWED_EXPORT_PATHS"
    name = f"mirror-{uuid.uuid4().hex[:6]}"
    base = f"{pulp.export_dir.rstrip('/')}/{name}"
    return client.request(
        "POST",
        "exporters/fedora_mirror/mirror/",
        json={
            "name": name,
            "path": f"{base}/tree",
            "metadata_path": f"{base}/metadata",
            "master_url": "https://dl.example.org/pub/containers",
        },
    )


def test_release_with_aliases_is_one_version(pulp, candidate, stable, tmp_path) -> None:
    c = pulp.client()
    exporter = _exporter(pulp, c)
    r = run_cli(
        "release", "--from", candidate["name"], "--to", stable["name"], "--tag", "v2",
        "--alias", "41", "--alias", "latest", "--exporter", exporter["name"], "--name", "demo/hello",
        "--json", *_creds(pulp), home=str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    v2 = _tags(c, candidate["pulp_href"])["v2"]
    assert _versions(c, stable["pulp_href"]) == [0, 1]  # exactly one new version
    assert _tags(c, stable["pulp_href"]) == {"v2": v2, "41": v2, "latest": v2}
    version = next(h for h in out["promote"]["created_resources"] if "/versions/" in h)
    assert version.endswith("/versions/1/")
    assert set(out["export"]["summary"]["tags"]) == {"v2", "41", "latest"}


def test_promote_by_digest_to_testing(pulp, candidate, stable, tmp_path) -> None:
    c = pulp.client()
    digest = _tags(c, candidate["pulp_href"])["latest"]
    r = run_cli(
        "promote", "--from", candidate["name"], "--to", stable["name"], "--digest", digest,
        "--alias", "testing", *_creds(pulp), home=str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        f"promoted {digest}, testing from {candidate['name']} to {stable['name']}: new version"
    )
    assert _tags(c, stable["pulp_href"]) == {"testing": digest}

    # The Python API, as Bodhi calls it: one build, three tags, one version.
    done = c.wait(c.promote(candidate["name"], stable["name"], ["v2"], aliases=["41", "latest"]), timeout=60)
    assert next(h for h in done.created_resources if "/versions/" in h).endswith("/versions/2/")
    assert _versions(c, stable["pulp_href"]) == [0, 1, 2]


def test_bad_build_arguments(pulp, candidate, stable, tmp_path) -> None:
    base = ["--from", candidate["name"], "--to", stable["name"], *_creds(pulp)]
    r = run_cli("promote", *base, "--digest", "sha256:" + "0" * 64, home=str(tmp_path))
    assert_one_line_error(r, 2, "--digest needs at least one --alias")
    r = run_cli("promote", *base, "--tag", "v2", "--tag", "latest", "--alias", "x", home=str(tmp_path))
    assert_one_line_error(r, 2, "--alias names one build")
    r = run_cli("promote", *base, "--tag", "nope", "--alias", "x", home=str(tmp_path))
    assert_one_line_error(r, 4, "tag 'nope' is not in")
    r = run_cli(
        "release", *base, "--tag", "v2", "--alias", "41", "--exporter", "nope-" + uuid.uuid4().hex[:6],
        home=str(tmp_path),
    )  # fmt: skip
    assert_one_line_error(r, 2, "no fedora_mirror exporter named")
    assert _versions(pulp.client(), stable["pulp_href"]) == [0]  # nothing promoted
    with pytest.raises(PulpConfigError):
        pulp.client().promote(candidate["name"], stable["name"], [])


def test_client_from_pulp_cli_profile(pulp, tmp_path, monkeypatch) -> None:
    (tmp_path / "pulp").mkdir()
    (tmp_path / "pulp" / "cli.toml").write_text(
        f'[cli-bodhi]\nbase_url = "{pulp.base_url}"\n'
        f'username = "{pulp.username}"\npassword = "{pulp.password}"\n'
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    client = PulpClient.from_profile("bodhi")
    with pytest.raises(PulpNotFound, match="no container repository named 'nope-"):
        client.find_repository("nope-" + uuid.uuid4().hex[:6])
    with pytest.raises(PulpConfigError, match="no pulp-cli profile 'other'"):
        PulpClient.from_profile("other")
