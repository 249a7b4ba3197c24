"""Flatpaks through the whole chain, installed with the real ``flatpak`` client.

A runtime and an app (whose command is a ``gcc -static`` binary) are built offline with flatpak's
own tools and bundled as OCI images (tests/harness/flatpak.py), pushed to the candidate
docker-registry, synced into Pulp, released with ``fedora-mirror release`` (the export task
writes tree + version-6 metadata), and served by crane_fedora over TLS with blobs redirected to
nginx. Then ``flatpak remote-add oci+https://crane`` / ``remote-ls`` / ``install`` / ``run``, each
test with its own HOME. The stand-alone path (``fedora-mirror export`` of the bundles as
``flatpak build-bundle --oci`` wrote them) is checked the same way without Pulp.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import (
    CliRun,
    LogCursor,
    admin_cli,
    blob_hex,
    export_dirs,
    fedora_mirror,
    mirror_exporter,
    synced_candidate,
    uid,
)
from tests.harness import clients
from tests.harness.crane import CraneStack
from tests.harness.flatpak import APP_ID, FlatpakBuild, FlatpakUser, available, build_flatpaks
from tests.harness.pulp import PulpServer
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles
from tests.pulp.client import PulpApi

pytestmark = [pytest.mark.services, pytest.mark.clients]

APP_NAME = "flatpaks/hello"
RUNTIME_NAME = "flatpaks/platform"
COMMON = "/index/static?label%3Aorg.flatpak.ref%3Aexists=1&architecture=amd64&os=linux&tag=latest"
CRANE_CONFIG = {"flatpak": {"max_age": "0"}}  # clients revalidate every time (ETag): reloads show at once


@pytest.fixture(scope="module")
def builds(state_dir: Path) -> dict[int, FlatpakBuild]:
    """Version 1 (released first) and version 2 of the app (released later under a new tag)."""
    missing = available()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (run `make deps`)")
    return {v: build_flatpaks(state_dir / f"flatpak-build-{v}", version=v) for v in (1, 2)}


def _ref_commits(user: FlatpakUser, remote: str) -> dict[str, str]:
    return user.remote_ls(remote)


def _image_blobs(metadata: Path, name: str) -> set[str]:
    doc = json.loads((metadata / f"{name}.json").read_text())
    return set(doc["blobs"])


def _crane_stack(state: Path, tree: Path, metadata: Path, tls: TLSFiles) -> CraneStack:
    """Crane (one worker, Flatpak index never cached) over ``metadata``, with a perfectly synced
    mirror: the tree itself; nothing settles, so exports show at once."""
    return CraneStack(
        state, tree, metadata, tls=tls, mirror_tree=tree, settle_seconds=0, workers=1, config=CRANE_CONFIG
    )


def _install_and_run(
    stack: CraneStack, tls: TLSFiles, home: Path, build: FlatpakBuild, names: list[str]
) -> None:
    """remote-add, remote-ls, install (runtime as dependency), run; every blob from the mirror nginx."""
    user = FlatpakUser(home, ca_cert=tls.ca_cert)
    user.remote_add("fedora", f"oci+{stack.crane_url}")
    listed = user.remote_ls("fedora")
    assert set(listed) == {build.app_ref, build.runtime_ref}, listed
    assert build.app_digest[7:].startswith(listed[build.app_ref])  # the "commit" is the digest
    assert build.runtime_digest[7:].startswith(listed[build.runtime_ref])

    assert stack.mirror is not None
    mirror_log = LogCursor(stack.mirror.access_log_path)
    master_log = LogCursor(stack.master.access_log_path)
    crane_log = LogCursor(stack.crane.state_dir / "access.log", gunicorn=True)
    res = user.run("--user", "install", "-y", "--noninteractive", "fedora", APP_ID)
    assert f"Installing {build.runtime_ref}" in res.stdout, res.stdout
    runtimes = user.run("--user", "list", "--runtime", "--columns=ref").stdout.split()
    apps = user.run("--user", "list", "--app", "--columns=ref").stdout.split()
    assert apps == [build.app_ref.split("/", 1)[1]]
    assert runtimes == [build.runtime_ref.split("/", 1)[1]]  # pulled as the app's dependency
    run = user.run("--user", "run", APP_ID)
    assert run.stdout.strip() == build.output

    wanted = set().union(*(_image_blobs(stack.metadata_dir, n) for n in names))
    from_mirror = {blob_hex(h.path) for h in mirror_log.read() if h.method == "GET" and h.status == 200}
    assert {d[7:] for d in wanted} <= from_mirror
    assert not [h for h in master_log.read() if "/blobs/" in h.path]  # settled: all from the mirror
    crane_blobs = [h for h in crane_log.read() if "/blobs/" in h.path and h.method == "GET"]
    assert crane_blobs and all(h.status == 302 for h in crane_blobs)  # crane only redirects


# -- the stand-alone path: fedora-mirror export of the bundles ---------------------------------


def test_standalone_export_of_bundles(
    builds: dict[int, FlatpakBuild], tls_ca: TLSFiles, state_dir: Path
) -> None:
    build = builds[1]
    work = state_dir / uid("flatpak-standalone")
    tree, metadata = work / "containers", work / "metadata"
    stack = _crane_stack(work / "stack", tree, metadata, tls_ca)
    for bundle, name in ((build.app_bundle, APP_NAME), (build.runtime_bundle, RUNTIME_NAME)):
        run = fedora_mirror(
            "export", str(bundle), "--name", name, "--tag", "latest", "--root", str(tree),
            "--metadata-dir", str(metadata), "--master-url", stack.master_url,
            "--mirror-url", str(stack.mirror_url), "--json", home=work,
        ).check()  # fmt: skip
        assert list(run.json()["tags"]) == ["latest"]
    doc = json.loads((metadata / f"{APP_NAME}.json").read_text())
    entry = doc["manifests"][build.app_digest]
    assert entry["labels"]["org.flatpak.ref"] == build.app_ref
    assert entry["platform"] == {"os": "linux", "architecture": "amd64"}
    with stack:
        _install_and_run(stack, tls_ca, work / "home", build, [APP_NAME, RUNTIME_NAME])


@pytest.mark.parametrize("compression", ["zstd", "zstd:chunked"])
def test_standalone_export_of_zstd_bundles(
    builds: dict[int, FlatpakBuild], tls_ca: TLSFiles, state_dir: Path, compression: str
) -> None:
    """flatpak 1.14 installs and runs a Flatpak whose layers skopeo recompressed to zstd (or
    zstd:chunked), found through crane's Flatpak index like any other (docs/crane.md)."""
    work = state_dir / uid("flatpak-zstd")
    work.mkdir()
    converted = {}
    for what, layout in (("app", builds[1].app_layout), ("runtime", builds[1].runtime_layout)):
        dest = work / f"{what}-zstd"
        res = clients.skopeo_copy(
            f"oci:{layout}:latest", f"oci:{dest}:latest", extra_args=["--dest-compress-format", compression]
        )
        raw = clients.skopeo_inspect(f"oci:{dest}:latest", raw=True)
        assert isinstance(raw, bytes)
        assert {la["mediaType"] for la in json.loads(raw)["layers"]} == {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        converted[what] = (dest, res.digest)
    build = dataclasses.replace(
        builds[1], app_digest=converted["app"][1], runtime_digest=converted["runtime"][1]
    )
    tree, metadata = work / "containers", work / "metadata"
    stack = _crane_stack(work / "stack", tree, metadata, tls_ca)
    for (layout, _digest), name in ((converted["app"], APP_NAME), (converted["runtime"], RUNTIME_NAME)):
        fedora_mirror(
            "export", str(layout), "--name", name, "--root", str(tree), "--metadata-dir", str(metadata),
            "--master-url", stack.master_url, "--mirror-url", str(stack.mirror_url), home=work,
        ).check()  # fmt: skip
    with stack:
        _install_and_run(stack, tls_ca, work / "home", build, [APP_NAME, RUNTIME_NAME])


# -- through Pulp --------------------------------------------------------------------------------


@dataclass
class FlatpakChain:
    stack: CraneStack
    tls: TLSFiles
    api: PulpApi
    registry: Registry
    builds: dict[int, FlatpakBuild]
    metadata: Path
    exporter: dict[str, Any]
    repos: dict[str, dict[str, Any]]  # "hello"/"platform" -> {remote, candidate, stable, upstream}
    cli: Any
    runs: dict[str, CliRun]


@pytest.fixture(scope="module")
def fchain(
    state_dir: Path,
    tls_ca: TLSFiles,
    builds: dict[int, FlatpakBuild],
    registry: Registry,
    pulp_server: PulpServer,
    pulp_api: PulpApi,
) -> Iterator[FlatpakChain]:
    """Push v1 (app + runtime) as candidates, sync into Pulp, ``release`` both, serve with crane."""
    api, pulp = pulp_api, pulp_server
    run = uid("fp")
    home = state_dir / f"{run}-home"
    home.mkdir()
    cli = admin_cli(pulp, home)

    v1 = builds[1]
    repos: dict[str, dict[str, Any]] = {}
    for key, layout in (("hello", v1.app_layout), ("platform", v1.runtime_layout)):
        upstream = f"candidates/{run}-{key}"
        clients.skopeo_copy(
            f"oci:{layout}:latest",
            f"docker://{registry.host}/{upstream}:latest",
            preserve_digests=True,
            dest_cert_dir=tls_ca.cert_dir(),
        )
        remote, candidate, stable = synced_candidate(api, f"{run}-{key}", registry, upstream, tls_ca)
        repos[key] = {"remote": remote, "candidate": candidate, "stable": stable, "upstream": upstream}

    export_base, tree, metadata = export_dirs(pulp, run)
    stack = _crane_stack(state_dir / f"{run}-stack", tree, metadata, tls_ca)
    exporter = mirror_exporter(api, run, tree, metadata, stack.master_url, mirror_url=stack.mirror_url)
    runs: dict[str, CliRun] = {}
    try:
        for key, name in (("hello", APP_NAME), ("platform", RUNTIME_NAME)):
            r = repos[key]
            runs[key] = cli(
                "release", "--from", r["candidate"]["name"], "--to", r["stable"]["name"], "--tag", "latest",
                "--exporter", exporter["name"], "--name", name, "--json",
            )  # fmt: skip
        stack.start()
        yield FlatpakChain(stack, tls_ca, api, registry, builds, metadata, exporter, repos, cli, runs)
    finally:
        stack.stop()
        shutil.rmtree(export_base, ignore_errors=True)


@pytest.mark.pulp
def test_release_exports_flatpak_facts(fchain: FlatpakChain) -> None:
    """Pulp's export (config blobs read from its artifacts) recorded platform and Flatpak labels."""
    v1 = fchain.builds[1]
    assert fchain.runs["hello"].json()["export"]["summary"]["tags"] == {"latest": v1.app_digest}
    doc = json.loads((fchain.metadata / f"{APP_NAME}.json").read_text())
    assert doc["version"] == 6
    entry = doc["manifests"][v1.app_digest]
    assert entry["platform"] == {"os": "linux", "architecture": "amd64"}
    assert entry["labels"]["org.flatpak.ref"] == v1.app_ref
    assert "[Application]" in entry["labels"]["org.flatpak.metadata"]
    rt = json.loads((fchain.metadata / f"{RUNTIME_NAME}.json").read_text())
    assert rt["manifests"][v1.runtime_digest]["labels"]["org.flatpak.ref"] == v1.runtime_ref


@pytest.mark.pulp
def test_index_served_over_tls(fchain: FlatpakChain) -> None:
    r = requests.get(
        fchain.stack.crane_url + COMMON,
        verify=str(fchain.tls.ca_cert),
        headers={"User-Agent": "Flatpak 1.14.10", "Accept-Encoding": "gzip"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip" and r.headers["ETag"]
    doc = r.json()
    assert doc["Registry"] == "/"
    by_name = {res["Name"]: res for res in doc["Results"]}
    assert set(by_name) == {APP_NAME, RUNTIME_NAME}
    assert by_name[APP_NAME]["Images"][0]["Digest"] == fchain.builds[1].app_digest
    again = requests.get(
        fchain.stack.crane_url + COMMON,
        verify=str(fchain.tls.ca_cert),
        headers={"If-None-Match": r.headers["ETag"], "Accept-Encoding": "gzip"},
        timeout=30,
    )
    assert again.status_code == 304


@pytest.mark.pulp
def test_flatpak_install_and_run(fchain: FlatpakChain, tmp_path: Path) -> None:
    _install_and_run(fchain.stack, fchain.tls, tmp_path / "home", fchain.builds[1], [APP_NAME, RUNTIME_NAME])


@pytest.mark.pulp
def test_new_tag_after_reexport_shows_in_remote_ls(fchain: FlatpakChain, tmp_path: Path) -> None:
    """Version 2 of the app, pushed and released under a new tag ``testing``: a remote for
    ``#testing`` lists nothing before, and the new build right after crane's reload; the
    ``latest`` remote keeps listing version 1."""
    user = FlatpakUser(tmp_path / "home", ca_cert=fchain.tls.ca_cert)
    url = f"oci+{fchain.stack.crane_url}"
    user.remote_add("fedora", url)
    user.remote_add("fedora-testing", url + "#testing")
    assert user.remote_ls("fedora-testing") == {}
    v1, v2 = fchain.builds[1], fchain.builds[2]

    hello = fchain.repos["hello"]
    clients.skopeo_copy(
        f"oci:{v2.app_layout}:latest",
        f"docker://{fchain.registry.host}/{hello['upstream']}:testing",
        preserve_digests=True,
        dest_cert_dir=fchain.tls.cert_dir(),
    )
    api = fchain.api
    api.run(
        api.post(
            hello["candidate"]["pulp_href"] + "sync/",
            {"remote": hello["remote"]["pulp_href"], "mirror": True},
        )
    )
    fchain.cli(
        "release", "--from", hello["candidate"]["name"], "--to", hello["stable"]["name"], "--tag", "testing",
        "--exporter", fchain.exporter["name"], "--name", APP_NAME, "--json",
    )  # fmt: skip
    deadline = time.monotonic() + 30  # crane polls its metadata every second here
    query = fchain.stack.crane_url + "/index/dynamic?tag=testing"
    while time.monotonic() < deadline:
        doc = requests.get(query, verify=str(fchain.tls.ca_cert), timeout=30).json()
        if doc["Results"]:
            break
        time.sleep(0.5)
    listed = user.remote_ls("fedora-testing")
    assert set(listed) == {v2.app_ref}
    assert v2.app_digest[7:].startswith(listed[v2.app_ref])
    assert v1.app_digest[7:].startswith(user.remote_ls("fedora")[v1.app_ref])
    user.run("--user", "install", "-y", "--noninteractive", "fedora-testing", APP_ID)
    assert user.run("--user", "run", APP_ID).stdout.strip() == v2.output
