"""The whole Fedora workflow against real parts, run once per session.

registry (TLS, the four fixture images as candidates) → Pulp sync (REST) → ``fedora-mirror
promote`` / ``publish`` / ``release`` (the CLI Bodhi runs, against the real Pulp) → the Pulp
export task writes the mirror tree and crane metadata → ``fedora-mirror verify`` → nginx serves
the tree, crane_fedora (gunicorn, TLS) serves the metadata → skopeo, podman, ctr and docker pull
every image by tag and by digest.

What it proves end to end: the digests a user pulls are the digests Pulp holds and the fixture
built (nothing re-encoded anywhere on the way); manifests come from crane and blobs from nginx
(access logs); a second repository sharing blobs reuses the same tree files (no second link);
a re-publish with no change writes nothing (mirrors see no churn); Bodhi's ``release`` exports
exactly the version its promotion created.

The mirror nginx serves the same tree (a perfectly synced mirror) and crane runs with
``settle_seconds = 3600``: everything was published seconds ago, so every blob must still go to
the master. Mirror lag itself is ``test_mirror_lag.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures.build_images import IMAGE_NAMES, FixtureImage
from pulp_fedora_mirror import layout
from tests.e2e.helpers import (
    CliRun,
    Hit,
    LogCursor,
    admin_cli,
    blob_hex,
    dir_layout_files,
    export_dirs,
    filelist_files,
    hexes,
    mirror_exporter,
    synced_candidate,
    uid,
)
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import CraneStack
from tests.harness.dockerd import Dockerd
from tests.harness.pulp import PulpServer
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles
from tests.pulp.client import PulpApi

pytestmark = [pytest.mark.services, pytest.mark.clients, pytest.mark.pulp]

CANDIDATE_REPO = "candidates/demo"  # one registry repository, one tag per fixture image
NAME = "fedora/demo"  # registry name of the stable repository as crane serves it
TOOLS_NAME = "fedora/demo-tools"  # second repository, sharing every blob with the first
FIRST_TAGS = ["single-docker", "single-oci", "multi-docker"]  # promote + publish
RELEASE_TAG = "multi-oci"  # then release (promote + publish of exactly that version)
TOOLS_TAGS = ["single-oci", "multi-oci"]
SETTLE_SECONDS = 3600


@dataclass
class Chain:
    """Everything the workflow produced; the tests below only read it (and pull)."""

    images: dict[str, FixtureImage]
    pulp: PulpServer
    api: PulpApi
    tls: TLSFiles
    stack: CraneStack
    tree: Path
    metadata: Path
    exporter: dict[str, Any]
    candidate: dict[str, Any]
    stable: dict[str, Any]
    tools: dict[str, Any]
    candidate_tags: dict[str, str]
    stable_tags: dict[str, str]
    tools_tags: dict[str, str]
    runs: dict[str, CliRun] = field(default_factory=dict)
    #: ``blobs/…`` tree path → (inode, link count) just before the tools export.
    links_before_tools: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: every tree/metadata file → (inode, size, mtime_ns) just before the no-change re-publish.
    snapshot_before_republish: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    snapshot_after_republish: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def ref(self, name: str, image: FixtureImage, how: str) -> str:
        """``127.0.0.1:PORT/<name>:<tag>`` or ``…@<digest>``; the tag is the fixture's name."""
        base = f"{self.stack.crane_host}/{name}"
        return f"{base}:{image.name}" if how == "tag" else f"{base}@{image.digest}"


def _tags(api: PulpApi, version_href: str) -> dict[str, str]:
    """Tag → manifest digest of one repository version, as Pulp reports it."""
    page = api.ok(
        api.get("content/container/tags/", params={"repository_version": version_href, "limit": 1000}), 200
    )
    return {t["name"]: api.ok(api.get(t["tagged_manifest"]), 200)["digest"] for t in page["results"]}


def _latest(api: PulpApi, repo: dict[str, Any]) -> str:
    return api.ok(api.get(repo["pulp_href"]), 200)["latest_version_href"]


def _snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """path → (inode, size, mtime_ns) of every file: a write anywhere changes it."""
    out = {}
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for fn in files:
                p = os.path.join(dirpath, fn)
                st = os.lstat(p)
                out[p] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _blob_links(tree: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in (tree / "blobs").rglob("*"):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(tree))] = (st.st_ino, st.st_nlink)
    return out


@pytest.fixture(scope="session")
def chain(
    state_dir: Path,
    tls_ca: TLSFiles,
    fixture_images: dict[str, FixtureImage],
    registry: Registry,
    pulp_server: PulpServer,
    pulp_api: PulpApi,
) -> Iterator[Chain]:
    """Run the workflow once: push, sync, promote, publish, release, second repo, re-publish."""
    api, pulp = pulp_api, pulp_server
    home = state_dir / "e2e-home"
    home.mkdir(exist_ok=True)
    cli = admin_cli(pulp, home)

    def publish(repo: dict[str, Any], name: str) -> CliRun:
        """What Bodhi runs after a push: export the repository's latest version as ``name``."""
        return cli(
            "publish", "--repository", repo["name"], "--exporter", exporter["name"], "--name", name, "--json"
        )

    # 1. Candidates: what the build system pushed, one registry repository, a tag per image.
    for image in fixture_images.values():
        clients.skopeo_copy(
            f"dir:{image.dir_path}",
            f"docker://{registry.host}/{CANDIDATE_REPO}:{image.name}",
            preserve_digests=True,
            dest_cert_dir=tls_ca.cert_dir(),
        )

    # 2. Pulp syncs them over TLS (the remote trusts the test CA), every blob downloaded.
    run = uid("e2e")
    _remote, candidate, stable = synced_candidate(api, run, registry, CANDIDATE_REPO, tls_ca)
    tools = api.ok(api.post("repositories/container/container/", {"name": f"{run}-tools"}), 201)

    # 3. The serving side's URLs are fixed before anything starts, so the exporter can name them.
    export_base, tree, metadata = export_dirs(pulp, run)
    stack = CraneStack(
        state_dir / "e2e-chain",
        tree,
        metadata,
        tls=tls_ca,
        mirror_tree=tree,
        settle_seconds=SETTLE_SECONDS,
    )
    exporter = mirror_exporter(api, run, tree, metadata, stack.master_url, mirror_url=stack.mirror_url)
    chain = Chain(
        images=fixture_images,
        pulp=pulp,
        api=api,
        tls=tls_ca,
        stack=stack,
        tree=tree,
        metadata=metadata,
        exporter=exporter,
        candidate=candidate,
        stable=stable,
        tools=tools,
        candidate_tags=_tags(api, _latest(api, candidate)),
        stable_tags={},
        tools_tags={},
    )
    try:
        # 4. Bodhi: promote three tags, publish; then release the fourth in one go.
        tag_args = [a for t in FIRST_TAGS for a in ("--tag", t)]
        chain.runs["promote"] = cli(
            "promote", "--from", candidate["name"], "--to", stable["name"], *tag_args, "--json"
        )
        chain.runs["publish"] = publish(stable, NAME)
        chain.runs["release"] = cli(
            "release", "--from", candidate["name"], "--to", stable["name"], "--tag", RELEASE_TAG,
            "--exporter", exporter["name"], "--name", NAME, "--json",
        )  # fmt: skip

        # 5. A second repository sharing blobs, exported into the same tree.
        chain.links_before_tools = _blob_links(tree)
        tools_tag_args = [a for t in TOOLS_TAGS for a in ("--tag", t)]
        chain.runs["promote-tools"] = cli(
            "promote", "--from", candidate["name"], "--to", tools["name"], *tools_tag_args, "--json"
        )
        chain.runs["publish-tools"] = publish(tools, TOOLS_NAME)

        # 6. Bodhi publishes again with nothing new (a retried job, a no-op push).
        chain.snapshot_before_republish = _snapshot(tree, metadata)
        chain.runs["republish"] = publish(stable, NAME)
        chain.snapshot_after_republish = _snapshot(tree, metadata)

        # 7. The admin's check of tree against metadata (exit 1 on any problem; check() asserts 0).
        chain.runs["verify"] = cli("verify", str(tree), "--metadata-dir", str(metadata), "--json")

        chain.stable_tags = _tags(api, _latest(api, stable))
        chain.tools_tags = _tags(api, _latest(api, tools))

        # 8. Serve it: nginx over the tree (master and "mirror"), crane over the metadata.
        stack.start()
        yield chain
    finally:
        stack.stop()
        shutil.rmtree(export_base, ignore_errors=True)


# -- the workflow's own results ---------------------------------------------------------------


def test_candidates_synced_with_fixture_digests(chain: Chain) -> None:
    """Pulp holds exactly what the build pushed: every tag at the fixture's digest."""
    assert chain.candidate_tags == {name: img.digest for name, img in chain.images.items()}


def test_promote_publish_release(chain: Chain) -> None:
    """promote copies only the named tags; publish exports them; release exports exactly the
    version its own promotion created (not "latest" read later), including the new blobs."""
    images = chain.images
    promote = chain.runs["promote"].json()
    assert promote["state"] == "completed"
    first_version = next(h for h in promote["created_resources"] if "/versions/" in h)

    publish = chain.runs["publish"].json()
    assert publish["state"] == "completed"
    s1 = publish["export"]["summary"]
    assert publish["export"]["params"]["repository_version"] == first_version
    assert s1["name"] == NAME
    assert s1["tags"] == {t: images[t].digest for t in FIRST_TAGS}
    first_blobs = set().union(*(images[t].blobs for t in FIRST_TAGS))
    assert s1["blobs"] == len(first_blobs)
    assert s1["blobs_linked"] == len(first_blobs)  # Pulp's artifacts and the tree share a filesystem
    assert s1["blobs_copied"] == 0

    release = chain.runs["release"].json()
    assert release["promote"]["state"] == release["state"] == "completed"
    release_version = next(h for h in release["promote"]["created_resources"] if "/versions/" in h)
    assert release_version != first_version
    assert release["export"]["params"]["repository_version"] == release_version
    s2 = release["export"]["summary"]
    assert s2["tags"] == {t: images[t].digest for t in [*FIRST_TAGS, RELEASE_TAG]}
    new_blobs = set(images[RELEASE_TAG].blobs) - first_blobs
    assert new_blobs, "fixture multi-oci must bring blobs of its own"
    assert s2["blobs_linked"] == len(new_blobs)
    assert s2["blobs_present"] == s2["blobs"] - len(new_blobs)
    assert chain.stable_tags == {t: images[t].digest for t in [*FIRST_TAGS, RELEASE_TAG]}


def test_verify_passes_and_metadata_matches_pulp(chain: Chain) -> None:
    """``fedora-mirror verify`` hashes every file and finds nothing wrong; crane's metadata
    names the nginx URLs and exactly Pulp's tags."""
    result = chain.runs["verify"].json()
    assert result["ok"] is True, result
    assert result["checked"] == len(set().union(*(i.blobs for i in chain.images.values()))) + len(
        set().union(*(i.manifests for i in chain.images.values()))
    )
    assert not result["unreferenced"] and not result["temp_files"]
    doc = json.loads((chain.metadata / f"{NAME}.json").read_text())
    assert doc["urls"] == {"master": chain.stack.master_url, "mirror": chain.stack.mirror_url}
    assert doc["tags"] == chain.stable_tags
    assert doc["repository"] == chain.stable["name"]
    tools = json.loads((chain.metadata / f"{TOOLS_NAME}.json").read_text())
    assert tools["tags"] == chain.tools_tags == {t: chain.images[t].digest for t in TOOLS_TAGS}


def test_second_repository_reuses_the_tree_files(chain: Chain) -> None:
    """The tools repository's blobs are all in the tree already: its export links nothing, every
    shared tree file keeps its inode and link count, and that inode is Pulp's artifact."""
    s = chain.runs["publish-tools"].json()["export"]["summary"]
    tools_blobs = set().union(*(chain.images[t].blobs for t in TOOLS_TAGS))
    assert (s["blobs"], s["blobs_present"], s["blobs_linked"], s["blobs_copied"]) == (
        len(tools_blobs),
        len(tools_blobs),
        0,
        0,
    )
    assert s["manifests_written"] == 0 and s["metadata_changed"] is True
    after = _blob_links(chain.tree)
    for digest in tools_blobs:
        rel = layout.blob_path(digest)
        assert after[rel] == chain.links_before_tools[rel], f"{rel} was linked again"
        art = chain.api.ok(chain.api.get("artifacts/", params={"sha256": digest.split(":", 1)[1]}), 200)
        assert art["count"] == 1, art
        artifact_path = chain.pulp.media_root / art["results"][0]["file"]
        assert os.stat(artifact_path).st_ino == after[rel][0], f"{rel} is not Pulp's artifact"


def test_republish_without_changes_writes_nothing(chain: Chain) -> None:
    """A second publish of the same content creates no file, rewrites no file (mirrors and
    MirrorManager see no change) and says so in its summary."""
    s = chain.runs["republish"].json()["export"]["summary"]
    assert s["files_written"] == 0, s
    assert (s["blobs_linked"], s["blobs_copied"], s["manifests_written"], s["bytes_written"]) == (0, 0, 0, 0)
    assert s["metadata_changed"] is False and s["filelist_changed"] is False
    assert chain.snapshot_after_republish == chain.snapshot_before_republish


def test_filelist_names_every_tree_file(chain: Chain) -> None:
    """Mirrors (quick-fedora-mirror) and MirrorManager see the tree only through
    ``fullfiletimelist-containers``: after all four exports it lists every file with its size."""
    listed = filelist_files(chain.tree)
    on_disk = {
        str(p.relative_to(chain.tree)): p.stat().st_size
        for p in chain.tree.rglob("*")
        if p.is_file() and not p.name.startswith((".", "fullfiletimelist-", "fullfilelist", "imagelist-"))
    }
    assert listed == on_disk
    images = chain.images.values()
    assert len(listed) == len(set().union(*(i.blobs for i in images))) + len(
        set().union(*(i.manifests for i in images))
    )


def test_tags_list_shows_what_was_promoted(chain: Chain) -> None:
    """crane's ``tags/list`` is Pulp's tag set of each published repository version."""
    for name, tags in ((NAME, chain.stable_tags), (TOOLS_NAME, chain.tools_tags)):
        r = requests.get(
            f"{chain.stack.crane_url}/v2/{name}/tags/list", verify=str(chain.tls.ca_cert), timeout=10
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"name": name, "tags": sorted(tags)}


# -- pulling through crane ----------------------------------------------------------------------


class Served:
    """Access-log cursors on crane and both nginx: who served what during one pull."""

    def __init__(self, chain: Chain) -> None:
        stack = chain.stack
        assert stack.mirror is not None
        self.chain = chain
        self.crane = LogCursor(stack.crane.state_dir / "access.log", gunicorn=True)
        self.master = LogCursor(stack.master.access_log_path)
        self.mirror = LogCursor(stack.mirror.access_log_path)

    def check(self, name: str) -> set[str]:
        """Assert the split of work; return the blob hexes the client fetched.

        crane answered every request itself (manifests 200, blob GETs 302 to the master, nothing
        failed); nginx (master) served exactly the redirected blobs and nothing else; the mirror
        nginx served nothing (everything is fresher than ``settle_seconds``).

        Access logs are written after the response is sent, so a client can finish (and exit)
        before gunicorn or nginx has logged its last request: read until the two sides agree
        (at most a few seconds) before asserting.
        """
        crane: list[Hit] = []
        master: list[Hit] = []
        mirror: list[Hit] = []
        deadline = time.monotonic() + 10
        while True:
            crane += self.crane.read()
            master += self.master.read()
            mirror += self.mirror.read()
            redirected = {blob_hex(h.path) for h in crane if h.method == "GET" and "/blobs/" in h.path}
            fetched = {blob_hex(h.path) for h in master if h.method == "GET"}
            if redirected == fetched or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert all(h.status < 400 for h in crane), [h for h in crane if h.status >= 400]
        manifests = [h for h in crane if f"/v2/{name}/manifests/" in h.path]
        assert manifests and all(h.status == 200 for h in manifests), manifests
        blob_gets = [h for h in crane if h.method == "GET" and "/blobs/" in h.path]
        assert all(h.status == 302 for h in blob_gets), blob_gets
        assert all(h.path.startswith("/pub/containers/blobs/sha256/") for h in master), master
        assert all(h.status in (200, 206) for h in master), master
        assert fetched == redirected
        assert mirror == []
        return {h for h in redirected if h}


@pytest.fixture(params=IMAGE_NAMES)
def image(request: pytest.FixtureRequest, chain: Chain) -> FixtureImage:
    return chain.images[request.param]


def _expected_digest(chain: Chain, image: FixtureImage) -> str:
    """The digest every client must report: Pulp's, which must also be the fixture's."""
    assert chain.stable_tags[image.name] == image.digest
    return chain.stable_tags[image.name]


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_skopeo(chain: Chain, image: FixtureImage, how: str, tmp_path: Path) -> None:
    """``skopeo copy --all`` to ``dir:`` reproduces the fixture layout byte for byte."""
    served = Served(chain)
    res = clients.skopeo_copy(
        f"docker://{chain.ref(NAME, image, how)}",
        f"dir:{tmp_path / 'd'}",
        preserve_digests=True,
        src_cert_dir=chain.tls.cert_dir(),
    )
    assert res.digest == _expected_digest(chain, image)
    assert dir_layout_files(tmp_path / "d") == dir_layout_files(Path(image.dir_path))
    for f in (tmp_path / "d").iterdir():
        if len(f.name) == 64:  # blobs are stored under their hex: hash them, not just compare
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name
    assert served.check(NAME) == hexes(image.blob_digests)  # --all: every blob, all from nginx


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_podman(chain: Chain, image: FixtureImage, how: str, tmp_path: Path) -> None:
    served = Served(chain)
    res = clients.podman_pull(
        chain.ref(NAME, image, how), root=tmp_path / "pm", cert_dir=chain.tls.cert_dir(), arch="amd64"
    )
    assert res.digest == _expected_digest(chain, image)
    amd64 = image.child_for("amd64") if image.is_list else image.digest
    assert amd64 in res.digests
    fetched = served.check(NAME)
    assert fetched == hexes(image.manifests[amd64].blobs)  # fresh storage: the amd64 image's blobs


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_ctr(chain: Chain, containerd: Containerd, image: FixtureImage, how: str) -> None:
    served = Served(chain)
    res = clients.ctr_pull(
        containerd, chain.ref(NAME, image, how), hosts_dir=chain.tls.hosts_dir(chain.stack.crane_host)
    )
    assert res.digest == _expected_digest(chain, image)
    # containerd shares content between namespaces: blobs an earlier pull stored are not fetched
    # again, so only "nothing but this image's blobs, all from nginx" holds for every order.
    assert served.check(NAME) <= hexes(image.blob_digests)


@pytest.mark.parametrize("how", ["tag", "digest"])
def test_docker(chain: Chain, dockerd: Dockerd, image: FixtureImage, how: str) -> None:
    served = Served(chain)
    res = clients.docker_pull(dockerd, chain.ref(NAME, image, how), platform="linux/amd64", remove=True)
    assert res.digest == _expected_digest(chain, image)
    amd64 = image.child_for("amd64") if image.is_list else image.digest
    config = image.manifests[amd64].blobs[0]
    assert res.image_id == config  # docker's image id is the amd64 config digest
    assert served.check(NAME) <= hexes(image.blob_digests)


@pytest.mark.parametrize("tag", TOOLS_TAGS)
def test_second_repository_is_served_from_the_same_files(chain: Chain, tag: str, tmp_path: Path) -> None:
    """The tools repository pulls with the same digests, its blobs redirected to the very tree
    paths the first repository uses."""
    image = chain.images[tag]
    served = Served(chain)
    res = clients.skopeo_copy(
        f"docker://{chain.ref(TOOLS_NAME, image, 'tag')}",
        f"dir:{tmp_path / 'd'}",
        preserve_digests=True,
        src_cert_dir=chain.tls.cert_dir(),
    )
    assert res.digest == chain.tools_tags[tag] == image.digest
    assert dir_layout_files(tmp_path / "d") == dir_layout_files(Path(image.dir_path))
    assert served.check(TOOLS_NAME) == hexes(image.blob_digests)
