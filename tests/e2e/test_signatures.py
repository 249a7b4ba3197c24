"""Signed images all the way to the mirrors, verified by real skopeo and podman.

The build system's side: a GPG key made here (``gpg --batch``, a private GNUPGHOME), images pushed
to the candidate docker-registry with ``skopeo copy --sign-by … --sign-identity <public name>``,
the signatures landing in a lookaside staging directory that nginx serves as the Pulp remote's
``sigstore``. Then Pulp syncs (``ManifestSignature`` content), ``fedora-mirror release`` promotes
(carrying the signatures) and exports into the mirror tree's ``signatures/`` lookaside store and the
metadata; nginx serves the tree, crane_fedora the metadata.

The user's side: a one-file ``policy.json`` (``signedBy`` with the public key for crane's host, reject
everything else) and either a ``registries.d`` pointing ``lookaside:`` at the mirror's
``signatures/`` or nothing (then the client uses crane's extension API, announced by
``X-Registry-Supports-Signatures: 1``). The signed image pulls; an unsigned one and one signed by
another key are refused. The stand-alone ``fedora-mirror export --signatures`` path gets the same
client test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures.build_images import FixtureImage
from pulp_fedora_mirror import layout
from tests.e2e.helpers import (
    CliRun,
    LogCursor,
    admin_cli,
    export_dirs,
    filelist_files,
    mirror_exporter,
    synced_candidate,
    uid,
)
from tests.harness import clients
from tests.harness.crane import CraneStack
from tests.harness.nginx import Nginx
from tests.harness.pulp import PulpServer
from tests.harness.registry import Registry
from tests.harness.tls import TLSFiles
from tests.pulp.client import PulpApi

pytestmark = [pytest.mark.services, pytest.mark.clients, pytest.mark.pulp]

CANDIDATE_REPO = "candidates/signed"
NAME = "fedora/signed"  # what Pulp's release exports
STANDALONE = "fedora/standalone"  # what `fedora-mirror export --signatures` exports
TAGS = ("signed", "unsigned", "other")


class Gpg:
    """A throw-away GnuPG home with keys made for this test (never the user's keyring)."""

    def __init__(self) -> None:
        # gpg-agent's socket path must stay short: a /tmp directory, not the pytest tmp dir
        self.home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
        self.home.chmod(0o700)

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def run(self, *args: str) -> str:
        res = subprocess.run(
            ["gpg", "--batch", *args],
            capture_output=True,
            text=True,
            env={**_os_env(), **self.env},
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def new_key(self, uid_: str) -> str:
        """A passphrase-less RSA signing key; returns its fingerprint."""
        self.run("--passphrase", "", "--quick-gen-key", uid_, "rsa2048", "sign", "never")
        for line in self.run("--with-colons", "--list-keys", uid_).splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise AssertionError(f"no fingerprint for {uid_}")

    def export(self, fpr: str, path: Path) -> Path:
        path.write_bytes(
            subprocess.run(
                ["gpg", "--batch", "--export", fpr],
                capture_output=True,
                env={**_os_env(), **self.env},
                check=True,
            ).stdout
        )
        return path

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env={**_os_env(), **self.env}, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


def _os_env() -> dict[str, str]:
    return dict(os.environ)


def _registries_d(path: Path, entries: dict[str, dict[str, str]]) -> Path:
    """A ``registries.d`` directory with one YAML file (JSON is valid YAML)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "test.yaml").write_text(json.dumps({"docker": entries}))
    return path


def _variant(image: FixtureImage, dest: Path, note: str) -> Path:
    """A copy of a single OCI image's ``dir:`` layout with an annotation: same blobs, new digest."""
    shutil.copytree(image.dir_path, dest)
    doc = json.loads((dest / "manifest.json").read_bytes())
    doc["annotations"] = {"org.example.note": note}
    (dest / "manifest.json").write_text(json.dumps(doc))
    return dest


@dataclass
class SigChain:
    stack: CraneStack
    tls: TLSFiles
    tree: Path
    metadata: Path
    fedora_key: Path
    other_key: Path
    digests: dict[str, str]
    standalone: dict[str, str]
    runs: dict[str, CliRun] = field(default_factory=dict)
    work: Path = Path()
    sig_tags: dict[str, str] = field(default_factory=dict)
    stable_tags: list[str] = field(default_factory=list)

    def ref(self, name: str, tag: str) -> str:
        return f"{self.stack.crane_host}/{name}:{tag}"

    def policy(self, key: Path) -> Path:
        """The one-file policy a Fedora user needs: our key for crane's host, nothing else."""
        p = self.work / f"policy-{key.stem}.json"
        p.write_text(
            json.dumps(
                {
                    "default": [{"type": "reject"}],
                    "transports": {
                        "docker": {
                            self.stack.crane_host: [
                                {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}
                            ]
                        }
                    },
                }
            )
        )
        return p

    def client_config(self, mode: str) -> tuple[Path, Path]:
        """(registries.d, HOME whose ~/.config/containers/registries.d is the same) for ``mode``.

        ``lookaside``: the mirror's ``signatures/`` (plain static files on nginx);
        ``extension``: no entry for crane's host, so the client asks crane's extension API.
        """
        home = self.work / f"home-{mode}"
        regd = home / ".config" / "containers" / "registries.d"
        entries = {}
        if mode == "lookaside":
            entries[self.stack.crane_host] = {"lookaside": self.stack.master_url + "signatures"}
        _registries_d(regd, entries)
        return regd, home


@pytest.fixture(scope="module")
def sig_chain(
    state_dir: Path,
    tls_ca: TLSFiles,
    fixture_images: dict[str, FixtureImage],
    registry: Registry,
    pulp_server: PulpServer,
    pulp_api: PulpApi,
) -> Iterator[SigChain]:
    api = pulp_api
    work = state_dir / uid("sigs")
    work.mkdir()
    gpg = Gpg()
    run = uid("sig")
    export_base, tree, metadata = export_dirs(pulp_server, run)
    stack = CraneStack(work / "stack", tree, metadata, tls=tls_ca, settle_seconds=0)
    staging = work / "staging"
    staging_nginx = Nginx(work / "staging-nginx", staging, tls=tls_ca)
    home = work / "cli-home"
    home.mkdir()
    cli = admin_cli(pulp_server, home)

    try:
        fedora_fpr = gpg.new_key("Fedora Test Signer <signer@example.org>")
        other_fpr = gpg.new_key("Someone Else <other@example.org>")
        fedora_key = gpg.export(fedora_fpr, work / "fedora.gpg")
        other_key = gpg.export(other_fpr, work / "other.gpg")

        # 1. The build system pushes candidates, signing for the public name (as Fedora would).
        sign_regd = _registries_d(
            work / "sign-registries.d", {registry.host: {"lookaside-staging": staging.as_uri()}}
        )
        single = fixture_images["single-oci"]
        sources = {
            "signed": (single.dir_path, fedora_fpr),
            "unsigned": (fixture_images["single-docker"].dir_path, None),
            "other": (str(_variant(single, work / "other-image", "signed by someone else")), other_fpr),
        }
        digests: dict[str, str] = {}
        for tag, (src, fpr) in sources.items():
            extra = ["--sign-by", fpr, "--sign-identity", f"{stack.crane_host}/{NAME}:{tag}"] if fpr else []
            digests[tag] = clients.skopeo_copy(
                f"dir:{src}",
                f"docker://{registry.host}/{CANDIDATE_REPO}:{tag}",
                all_images=False,
                preserve_digests=True,
                dest_cert_dir=tls_ca.cert_dir(),
                registries_d=sign_regd,
                extra_args=extra,
                env=gpg.env,
            ).digest
        assert len(set(digests.values())) == 3, digests
        # a sigstore (cosign) attachment: a plain manifest under the sha256-<hex>.sig tag of the
        # signed image (Debian's tools cannot make a real one; carrying it is what is tested)
        sig_tags = {"promoted": "sha256-" + digests["signed"].split(":")[1] + ".sig"}
        for sig_tag in sig_tags.values():
            clients.skopeo_copy(
                f"dir:{fixture_images['single-docker'].dir_path}",
                f"docker://{registry.host}/{CANDIDATE_REPO}:{sig_tag}",
                all_images=False,
                preserve_digests=True,
                dest_cert_dir=tls_ca.cert_dir(),
            )

        # 2. Pulp syncs images and signatures (the staging area served as the remote's sigstore).
        staging_nginx.start()
        _remote, candidate, stable = synced_candidate(
            api, run, registry, CANDIDATE_REPO, tls_ca, sigstore=staging_nginx.url
        )
        exporter = mirror_exporter(api, run, tree, metadata, stack.master_url)
        chain = SigChain(stack, tls_ca, tree, metadata, fedora_key, other_key, digests, {}, work=work)
        chain.runs["candidate-signatures"] = CliRun([], 0, json.dumps(_signatures(api, candidate)), "")

        # 3. Bodhi: release (promote + carry signatures + export that version).
        tag_args = [a for t in TAGS for a in ("--tag", t)]
        chain.runs["release"] = cli(
            "release", "--from", candidate["name"], "--to", stable["name"], *tag_args,
            "--exporter", exporter["name"], "--name", NAME, "--json",
        )  # fmt: skip
        chain.runs["stable-signatures"] = CliRun([], 0, json.dumps(_signatures(api, stable)), "")
        chain.sig_tags = sig_tags
        chain.stable_tags = _tag_names(api, stable)
        # a second release of the same tags changes nothing, signatures included
        chain.runs["rerelease"] = cli(
            "release", "--from", candidate["name"], "--to", stable["name"], *tag_args,
            "--exporter", exporter["name"], "--name", NAME, "--json",
        )  # fmt: skip

        # 4. Stand-alone: an OCI layout plus a lookaside store written by `skopeo copy --sign-by`.
        sa_staging = work / "standalone-staging"
        sa_regd = _registries_d(
            work / "sa-registries.d", {registry.host: {"lookaside-staging": sa_staging.as_uri()}}
        )
        clients.skopeo_copy(
            f"dir:{single.dir_path}",
            f"docker://{registry.host}/standalone/build:single-oci",
            all_images=False,
            preserve_digests=True,
            dest_cert_dir=tls_ca.cert_dir(),
            registries_d=sa_regd,
            extra_args=[
                "--sign-by",
                fedora_fpr,
                "--sign-identity",
                f"{stack.crane_host}/{STANDALONE}:single-oci",
            ],
            env=gpg.env,
        )
        chain.runs["standalone"] = cli(
            "export", single.oci_layout, "--name", STANDALONE, "--root", str(tree),
            "--metadata-dir", str(metadata), "--master-url", stack.master_url,
            "--signatures", str(sa_staging), "--json", "-q",
        )  # fmt: skip
        chain.standalone = {"signed": single.digest, "unsigned": fixture_images["single-docker"].digest}
        chain.runs["verify"] = cli("verify", str(tree), "--metadata-dir", str(metadata), "--json")

        stack.start()
        yield chain
    finally:
        stack.stop()
        staging_nginx.stop()
        gpg.stop()
        shutil.rmtree(export_base, ignore_errors=True)


def _signatures(api: PulpApi, repo: dict[str, Any]) -> list[str]:
    """Digests of the manifests the latest version of ``repo`` has signatures for."""
    version = api.ok(api.get(repo["pulp_href"]), 200)["latest_version_href"]
    page = api.ok(
        api.get("content/container/signatures/", params={"repository_version": version, "limit": 1000}), 200
    )
    return sorted(api.ok(api.get(s["signed_manifest"]), 200)["digest"] for s in page["results"])


def _tag_names(api: PulpApi, repo: dict[str, Any]) -> list[str]:
    version = api.ok(api.get(repo["pulp_href"]), 200)["latest_version_href"]
    page = api.ok(
        api.get("content/container/tags/", params={"repository_version": version, "limit": 1000}), 200
    )
    return sorted(t["name"] for t in page["results"])


# -- what the chain carried ----------------------------------------------------------------------


def test_pulp_synced_and_promotion_carried_the_signatures(sig_chain: SigChain) -> None:
    d = sig_chain.digests
    expected = sorted([d["signed"], d["other"]])
    assert json.loads(sig_chain.runs["candidate-signatures"].stdout) == expected
    assert json.loads(sig_chain.runs["stable-signatures"].stdout) == expected
    release = sig_chain.runs["release"].json()
    assert release["promote"]["state"] == "completed"  # the promote task carried the signatures
    summary = release["export"]["summary"]
    assert (summary["signatures"], summary["signatures_written"]) == (2, 2)
    # the promoted image's sigstore attachment came along (copy_tags alone leaves it behind)
    assert sig_chain.stable_tags == sorted([*TAGS, sig_chain.sig_tags["promoted"]])
    doc = json.loads((sig_chain.metadata / f"{NAME}.json").read_text())
    assert sig_chain.sig_tags["promoted"] in doc["tags"]
    again = sig_chain.runs["rerelease"].json()
    assert not [h for h in again["promote"]["created_resources"] if "/versions/" in h]
    assert again["export"]["summary"]["files_written"] == 0


def test_tree_has_the_lookaside_store_listed_and_verified(sig_chain: SigChain) -> None:
    d = sig_chain.digests
    listed = filelist_files(sig_chain.tree)
    for name, digest in (
        (NAME, d["signed"]),
        (NAME, d["other"]),
        (STANDALONE, sig_chain.standalone["signed"]),
    ):
        rel = layout.signature_path(name, digest, 1)
        assert rel in listed, rel
        assert not (sig_chain.tree / layout.signature_path(name, digest, 2)).exists()
    assert not (sig_chain.tree / layout.signature_dir(NAME, d["unsigned"])).exists()
    result = sig_chain.runs["verify"].json()
    assert result["ok"] and not result["unreferenced"], result
    sa = sig_chain.runs["standalone"].json()
    assert (sa["signatures"], sa["signatures_written"]) == (1, 1)


# -- real clients verifying through crane + mirror ----------------------------------------------

CASES = [(NAME, "signed", True), (NAME, "unsigned", False), (NAME, "other", False)]
STANDALONE_CASES = [(STANDALONE, "single-oci", True), (STANDALONE, "single-docker", False)]


def _pull(chain: SigChain, client: str, mode: str, name: str, tag: str, key: Path | None = None) -> str:
    regd, home = chain.client_config(mode)
    policy = chain.policy(key or chain.fedora_key)
    ref = chain.ref(name, tag)
    if client == "skopeo":
        out = chain.work / uid("skopeo-out")
        return clients.skopeo_copy(
            f"docker://{ref}",
            f"dir:{out}",
            all_images=False,
            src_cert_dir=chain.tls.cert_dir(),
            policy=policy,
            registries_d=regd,
        ).digest
    return clients.podman_pull(
        ref,
        root=chain.work / uid("podman"),
        cert_dir=chain.tls.cert_dir(),
        policy=policy,
        env={"HOME": str(home)},
    ).digest


def _check_policy(chain: SigChain, client: str, mode: str, name: str, tag: str, accepted: bool) -> None:
    """Only the image signed by Fedora's key for this name gets through the signedBy policy, and the
    signatures came from where the mode says: nginx's ``signatures/`` or crane's extension API."""
    crane_log = LogCursor(chain.stack.crane.state_dir / "access.log", gunicorn=True)
    nginx_log = LogCursor(chain.stack.master.access_log_path)
    if accepted:
        digest = _pull(chain, client, mode, name, tag)
        expected = chain.digests["signed"] if name == NAME else chain.standalone["signed"]
        assert digest == expected
    else:
        with pytest.raises(clients.ClientError) as err:
            _pull(chain, client, mode, name, tag)
        text = err.value.stderr
        if tag in ("unsigned", "single-docker"):
            assert "A signature was required, but no signature exists" in text, text
        else:
            assert "signature" in text.lower() and "no signature exists" not in text, text
    want_crane = mode == "extension"
    crane_hits = _collect(
        crane_log, lambda hs: not want_crane or any("/extensions/v2/" in h.path for h in hs)
    )
    nginx_hits = _collect(nginx_log, lambda hs: want_crane or any("/signatures/" in h.path for h in hs))
    sig_from_crane = [h for h in crane_hits if h.path.startswith("/extensions/v2/")]
    sig_from_nginx = [h for h in nginx_hits if "/signatures/" in h.path]
    if want_crane:
        assert sig_from_crane and all(h.status == 200 for h in sig_from_crane), crane_hits
        assert not sig_from_nginx, nginx_hits
    else:
        assert sig_from_nginx, nginx_hits
        assert not sig_from_crane, crane_hits
        if accepted:
            assert any(h.status == 200 and h.path.endswith("/signature-1") for h in sig_from_nginx)


@pytest.mark.parametrize("client", ["skopeo", "podman"])
@pytest.mark.parametrize(("name", "tag", "accepted"), CASES + STANDALONE_CASES)
def test_extension_api(sig_chain: SigChain, client: str, name: str, tag: str, accepted: bool) -> None:
    """No registries.d entry: the client asks crane, which says ``X-Registry-Supports-Signatures``."""
    _check_policy(sig_chain, client, "extension", name, tag, accepted)


@pytest.fixture(scope="module")
def lookaside_chain(sig_chain: SigChain) -> Iterator[SigChain]:
    """crane restarted (same port) with ``signatures_extension = off``.

    containers/image prefers a registry's extension API over a configured lookaside, so mirrors
    carry the signature traffic only when crane stops advertising it (docs/signatures.md).
    """
    stack = sig_chain.stack
    stack.crane.stop()
    stack.extra_config.setdefault("registry", {})["signatures_extension"] = "off"
    stack.write_config()
    stack.crane.start()
    yield sig_chain


@pytest.mark.parametrize("client", ["skopeo", "podman"])
@pytest.mark.parametrize(("name", "tag", "accepted"), CASES + STANDALONE_CASES)
def test_lookaside_on_the_mirror(
    lookaside_chain: SigChain, client: str, name: str, tag: str, accepted: bool
) -> None:
    """registries.d ``lookaside:`` → the mirror tree's ``signatures/`` (static files on nginx)."""
    _check_policy(lookaside_chain, client, "lookaside", name, tag, accepted)


def test_another_users_key_refuses_fedoras_image(lookaside_chain: SigChain) -> None:
    """A policy trusting only the other key refuses the Fedora-signed image (invalid signature)."""
    with pytest.raises(clients.ClientError) as err:
        _pull(lookaside_chain, "skopeo", "lookaside", NAME, "signed", key=lookaside_chain.other_key)
    assert "signature" in err.value.stderr.lower()


def _collect(cursor: LogCursor, done: Any) -> list:
    """Hits of ``cursor`` once ``done(hits)`` holds (access logs are written after the response),
    giving up after a few seconds; the caller's assertions then report what was seen."""
    hits: list = []
    deadline = time.monotonic() + 10
    while True:
        hits += cursor.read()
        if done(hits) or time.monotonic() > deadline:
            return hits
        time.sleep(0.1)
