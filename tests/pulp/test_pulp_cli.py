"""The installed ``pulp`` command (pulp-cli + our plugin) against the suite's real Pulp.

Every ``pulp fedora-mirror`` subcommand, with basic auth on the command line and with a
``cli.toml`` profile; unknown names are one-line errors; RBAC refusals carry the server's text;
the alias release makes exactly one repository version whose three tags the tree and crane serve.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crane_fedora.app import create_app
from crane_fedora.config import parse_config
from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER, PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import SyncedRepo, uid
from tests.pulp.signing import cosign_tag
from tests.pulp.test_promote import build, new_repo, tags_of, versions  # noqa: F401 (build: fixture)

PULP = str(Path(sys.executable).parent / "pulp")


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG config + cache dirs for pulp-cli (cli.toml, the cached API description)."""
    return tmp_path_factory.mktemp("pulp-cli")


def pulp_cli(
    *args: str,
    home: Path,
    base_url: str | None = None,
    user: str = ADMIN_USER,
    password: str = ADMIN_PASSWORD,
) -> subprocess.CompletedProcess[str]:
    """``pulp [--base-url U --username U --password P] ARGS`` with its own config and cache dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULP_")}
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["XDG_CACHE_HOME"] = str(home / "cache")
    env["HOME"] = str(home)
    conn = ["--base-url", base_url, "--username", user, "--password", password] if base_url else []
    return subprocess.run([PULP, *conn, *args], capture_output=True, text=True, timeout=300, env=env)


def ok(r: subprocess.CompletedProcess[str]) -> Any:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout) if r.stdout.strip() else None


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Non-zero exit, exactly one stderr line ``Error: …`` (no traceback), containing ``needles``."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


SUBCOMMANDS = [
    [],
    ["exporter"],
    ["exporter", "create"],
    ["exporter", "list"],
    ["exporter", "show"],
    ["exporter", "update"],
    ["exporter", "destroy"],
    ["export"],
    ["export", "run"],
    ["export", "list"],
    ["prune"],
    ["promote"],
    ["release"],
]


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=lambda s: " ".join(s) or "top")
def test_help_everywhere(sub: list[str], cli_home: Path) -> None:
    r = pulp_cli("fedora-mirror", *sub, "--help", home=cli_home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: pulp fedora-mirror")
    if sub == ["exporter", "create"]:
        for opt in (
            "--name",
            "--path",
            "--metadata-path",
            "--master-url",
            "--mirror-url",
            "--module",
            "--prune-grace",
            "--allow-protected",
        ):
            assert opt in r.stdout
    if sub in (["promote"], ["release"]):
        for opt in ("--from", "--to", "--tag", "--digest", "--alias"):
            assert opt in r.stdout


def test_exporter_crud_with_basic_auth(
    pulp: PulpServer, export_dirs: tuple[Path, Path], cli_home: Path
) -> None:
    tree, meta = export_dirs
    name = uid("cli")
    base = pulp.base_url
    created = ok(
        pulp_cli(
            "--format",
            "json",
            "fedora-mirror",
            "exporter",
            "create",
            "--name",
            name,
            "--path",
            str(tree),
            "--metadata-path",
            str(meta),
            "--master-url",
            "https://dl.example.org/pub/containers",
            "--mirror-url",
            "https://download.example.org/pub/containers/",
            "--prune-grace",
            "3600",
            home=cli_home,
            base_url=base,
        )
    )
    assert created["name"] == name and created["master_url"] == "https://dl.example.org/pub/containers/"
    listed = ok(pulp_cli("fedora-mirror", "exporter", "list", "--name", name, home=cli_home, base_url=base))
    assert [e["name"] for e in listed] == [name]
    shown = ok(pulp_cli("fedora-mirror", "exporter", "show", "--name", name, home=cli_home, base_url=base))
    assert shown["prune_grace"] == 3600 and shown["pulp_href"] == created["pulp_href"]
    updated = ok(
        pulp_cli(
            "fedora-mirror",
            "exporter",
            "update",
            "--name",
            name,
            "--prune-grace",
            "60",
            "--mirror-url",
            "",
            home=cli_home,
            base_url=base,
        )
    )
    assert updated["prune_grace"] == 60 and updated["mirror_url"] is None
    assert updated["path"] == str(tree)
    r = pulp_cli("fedora-mirror", "exporter", "update", "--name", name, home=cli_home, base_url=base)
    assert r.returncode != 0 and "nothing to update" in r.stderr
    r = pulp_cli(
        "fedora-mirror",
        "exporter",
        "create",
        "--name",
        uid("bad"),
        "--path",
        "/etc",
        "--metadata-path",
        str(meta),
        "--master-url",
        "https://x/",
        home=cli_home,
        base_url=base,
    )
    one_line_error(r, "path: Path '/etc' is not an allowed export path")
    ok(pulp_cli("fedora-mirror", "exporter", "destroy", "--name", name, home=cli_home, base_url=base))
    r = pulp_cli("fedora-mirror", "exporter", "show", "--name", name, home=cli_home, base_url=base)
    one_line_error(r, "Could not find fedora-mirror exporter", name)


def test_unknown_names_are_one_line_errors(
    pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, cli_home: Path
) -> None:
    exporter = make_exporter()
    base = pulp.base_url
    missing = uid("missing")
    r = pulp_cli(
        "fedora-mirror", "export", "run", "--exporter", missing, "--repository", synced_repo.name,
        home=cli_home, base_url=base,
    )  # fmt: skip
    one_line_error(r, "Could not find fedora-mirror exporter", missing)
    r = pulp_cli(
        "fedora-mirror", "export", "run", "--exporter", exporter["name"], "--repository", missing,
        home=cli_home, base_url=base,
    )  # fmt: skip
    one_line_error(r, "Could not find container repository", missing)
    r = pulp_cli("fedora-mirror", "prune", "--exporter", missing, home=cli_home, base_url=base)
    one_line_error(r, missing)
    r = pulp_cli("fedora-mirror", "export", "list", "--exporter", missing, home=cli_home, base_url=base)
    one_line_error(r, missing)
    r = pulp_cli(
        "fedora-mirror", "promote", "--from", missing, "--to", synced_repo.name, "--tag", "x",
        home=cli_home, base_url=base,
    )  # fmt: skip
    one_line_error(r, "Could not find container repository", missing)
    r = pulp_cli(
        "fedora-mirror", "promote", "--from", synced_repo.name, "--to", synced_repo.name, "--tag", "nope",
        "--alias", "x", home=cli_home, base_url=base,
    )  # fmt: skip
    one_line_error(r, "tag 'nope' is not in")
    r = pulp_cli("fedora-mirror", "exporter", "list", home=cli_home, base_url=base, password="wrong")
    one_line_error(r, "Authentication failed", "Invalid username/password")


def test_export_run_list_prune_with_a_profile(
    pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, cli_home: Path, tmp_path: Path
) -> None:
    """No connection options: everything comes from the ``[cli-fm]`` profile of cli.toml."""
    home = tmp_path / "profile-home"
    (home / "config" / "pulp").mkdir(parents=True)
    (home / "config" / "pulp" / "cli.toml").write_text(
        '[cli]\nbase_url = "http://127.0.0.1:1"\nformat = "json"\n\n'
        f'[cli-fm]\nbase_url = "{pulp.base_url}"\nusername = "{ADMIN_USER}"\npassword = "{ADMIN_PASSWORD}"\n'
        'format = "json"\n'
    )
    exporter = make_exporter()
    prof = ["--profile", "fm", "fedora-mirror"]
    summary = ok(
        pulp_cli(
            *prof, "export", "run", "--exporter", exporter["name"], "--repository", synced_repo.name,
            "--version", "1", "--name", "test/multi-oci", home=home,
        )
    )  # fmt: skip
    assert summary["name"] == "test/multi-oci"
    assert set(summary["tags"]) == set(api_tags(pulp, synced_repo.version_href))
    task = ok(
        pulp_cli(
            *prof, "export", "run", "--exporter", exporter["name"], "--repository", synced_repo.name,
            "--background", home=home,
        )
    )  # fmt: skip
    assert task["pulp_href"].startswith("/pulp/api/v3/tasks/") and task["state"] in (
        "waiting",
        "running",
        "completed",
    )
    PulpApi(pulp.base_url, ADMIN_USER, ADMIN_PASSWORD).wait_task(task["pulp_href"])
    exports = ok(pulp_cli(*prof, "export", "list", "--exporter", exporter["name"], home=home))
    assert len(exports) == 2 and all(e["summary"]["name"] for e in exports)
    pruned = ok(pulp_cli(*prof, "prune", "--exporter", exporter["name"], "--dry-run", home=home))
    assert pruned["dry_run"] is True
    # Without the profile the [cli] section's dead URL is used: proof the profile was what worked.
    r = pulp_cli("fedora-mirror", "exporter", "list", home=home)
    assert r.returncode != 0


def api_tags(pulp: PulpServer, version_href: str) -> dict[str, str]:
    return tags_of(PulpApi(pulp.base_url, ADMIN_USER, ADMIN_PASSWORD), version_href)


def test_rbac_refusal_carries_the_servers_message(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, cli_home: Path
) -> None:
    """A user who may view the exporter but not export through it is refused with Pulp's reason."""
    exporter = make_exporter()
    name, password = uid("viewer"), "pw-" + uid("x")
    user = api.ok(api.post("users/", {"username": name, "password": password}), 201)
    try:
        for role in ("fedora_mirror.mirrorexporter_viewer", "container.containerrepository_viewer"):
            api.ok(api.post(user["pulp_href"] + "roles/", {"role": role, "content_object": None}), 201)
        r = pulp_cli(
            "fedora-mirror", "export", "run", "--exporter", exporter["name"],
            "--repository", synced_repo.name,
            home=cli_home, base_url=pulp.base_url, user=name, password=password,
        )  # fmt: skip
        one_line_error(r, "not authorized", "You do not have permission to perform this action.")
        assert api.ok(api.get(exporter["pulp_href"] + "exports/"), 200)["count"] == 0
    finally:
        api.delete(user["pulp_href"])


def test_alias_release_one_version_tree_and_crane_serve_all_tags(
    api: PulpApi,
    pulp: PulpServer,
    build: dict[str, Any],  # noqa: F811 (the fixture imported above)
    make_exporter: Any,
    cli_home: Path,
) -> None:
    image = build["image"]
    stable = new_repo(api)
    exporter = make_exporter()
    out = ok(
        pulp_cli(
            "fedora-mirror", "release", "--from", build["repo"]["name"], "--to", stable["name"],
            "--tag", "41-3", "--alias", "41", "--alias", "latest", "--exporter", exporter["name"],
            "--name", "fedora/app", home=cli_home, base_url=pulp.base_url,
        )
    )  # fmt: skip
    assert versions(api, stable["pulp_href"]) == [0, 1]  # exactly one new version
    v1 = api.ok(api.get(stable["pulp_href"]), 200)["latest_version_href"]
    assert out["promote"]["repository_version"] == v1
    sig = cosign_tag(image.digest)
    want = {"41-3": image.digest, "41": image.digest, "latest": image.digest, sig: build["sig_digest"]}
    assert tags_of(api, v1) == want
    assert set(out["export"]["tags"]) == set(want)

    tree, meta = Path(exporter["path"]), Path(exporter["metadata_path"])
    hexd = image.digest.split(":", 1)[1]
    assert [p for p in tree.rglob("*") if p.name == hexd], "the index is in the tree"
    ini = f"[general]\ndata_dir = {meta}\ndata_dir_polling_interval = 0\n"
    app = create_app(dataclasses.replace(parse_config(ini)))
    try:
        client = app.test_client()
        for tag in ("41-3", "41", "latest"):
            r = client.get(f"/v2/fedora/app/manifests/{tag}", headers={"Accept": image.media_type})
            assert r.status_code == 200, (tag, r.status_code, r.data[:200])
            assert r.headers["Docker-Content-Digest"] == image.digest
        listed = client.get("/v2/fedora/app/tags/list").get_json()
        assert set(listed["tags"]) == set(want)
    finally:
        app.extensions["crane_fedora"].store.stop()


def test_promote_command_carries_the_sig_tag(
    api: PulpApi,
    pulp: PulpServer,
    build: dict[str, Any],  # noqa: F811 (the fixture imported above)
    cli_home: Path,
) -> None:
    """``pulp fedora-mirror promote --digest … --alias testing``: the cosign .sig tag comes along."""
    image = build["image"]
    testing = new_repo(api, "testing")
    result = ok(
        pulp_cli(
            "fedora-mirror", "promote", "--from", build["repo"]["name"], "--to", testing["name"],
            "--digest", image.digest, "--alias", "testing", home=cli_home, base_url=pulp.base_url,
        )
    )  # fmt: skip
    assert result["sigstore_tags"] == [cosign_tag(image.digest)]
    assert result["signatures"] == 1
    assert versions(api, testing["pulp_href"]) == [0, 1]
    assert tags_of(api, result["repository_version"]) == {
        "testing": image.digest,
        cosign_tag(image.digest): build["sig_digest"],
    }


@pytest.mark.parametrize("auth", ["basic", "profile"])
def test_every_subcommand(
    auth: str,
    api: PulpApi,
    pulp: PulpServer,
    build: dict[str, Any],  # noqa: F811 (the fixture imported above)
    export_dirs: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """Each ``pulp fedora-mirror`` subcommand once, with command-line basic auth or a profile."""
    home = tmp_path / "home"
    if auth == "profile":
        (home / "config" / "pulp").mkdir(parents=True)
        (home / "config" / "pulp" / "cli.toml").write_text(
            f'[cli-fm]\nbase_url = "{pulp.base_url}"\nusername = "{ADMIN_USER}"\n'
            f'password = "{ADMIN_PASSWORD}"\nformat = "json"\n'
        )
        conn = ["--profile", "fm"]
    else:
        home.mkdir()
        conn = ["--base-url", pulp.base_url, "--username", ADMIN_USER, "--password", ADMIN_PASSWORD]

    def run(*args: str) -> Any:
        return ok(pulp_cli(*conn, "--format", "json", "fedora-mirror", *args, home=home))

    tree, meta = export_dirs
    name = uid("every")
    exporter = run(
        "exporter", "create", "--name", name, "--path", str(tree), "--metadata-path", str(meta),
        "--master-url", "https://dl.example.org/pub/containers/",
    )  # fmt: skip
    assert exporter["name"] == name
    assert [e["name"] for e in run("exporter", "list", "--name", name)] == [name]
    assert run("exporter", "show", "--name", name)["pulp_href"] == exporter["pulp_href"]
    assert run("exporter", "update", "--name", name, "--module", "containers")["module"] == "containers"
    repo = build["repo"]["name"]
    summary = run(
        "export", "run", "--exporter", name, "--repository", repo, "--version", "1", "--name", "x/app"
    )
    assert summary["name"] == "x/app" and "41-3" in summary["tags"]
    task = run("export", "run", "--exporter", name, "--repository", repo, "--name", "x/app", "--background")
    api.wait_task(task["pulp_href"])
    assert len(run("export", "list", "--exporter", name)) == 2
    assert run("prune", "--exporter", name, "--dry-run")["dry_run"] is True
    stable, testing = new_repo(api), new_repo(api, "testing")
    promoted = run("promote", "--from", repo, "--to", testing["name"], "--tag", "41-3", "--alias", "testing")
    assert set(promoted["tags"]) == {"41-3", "testing"}
    released = run(
        "release", "--from", repo, "--to", stable["name"], "--tag", "41-3", "--alias", "latest",
        "--exporter", name, "--name", "x/app",
    )  # fmt: skip
    assert released["export"]["tags"]["latest"] == build["image"].digest
    assert versions(api, stable["pulp_href"]) == [0, 1]
    run("exporter", "destroy", "--name", name)
    one_line_error(pulp_cli(*conn, "fedora-mirror", "exporter", "show", "--name", name, home=home), name)
