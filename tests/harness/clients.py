"""Drive the real container clients (skopeo, podman, ctr, docker) and report what they pulled.

Every function returns a :class:`PullResult` whose ``digest`` is the top-level manifest digest the
client recorded (list digest for lists), or raises :class:`ClientError` carrying the client's
stderr. Tests compare ``digest`` with the fixture's: equal digests prove the client received and
verified the exact bytes.

Quirks these wrappers encode (skopeo 1.9.3, podman 4.3.1, containerd 1.6.20, dockerd 20.10.24):

- skopeo/podman with TLS verification off try https first and wait 10 s on a plain-HTTP
  gunicorn; give them TLS (and ``cert_dir`` to verify) instead.
- skopeo's ``oci:`` destination converts Docker manifests/lists to OCI (new digests) and refuses
  with ``--preserve-digests``; ``dir:`` keeps them byte for byte.
- podman refuses a ``--runroot`` longer than 50 characters: a short /tmp dir is used.
- ctr 1.6 talks plain HTTP to 127.0.0.1/localhost unless given a ``--hosts-dir`` (then https with
  the configured CA); ``--skip-verify`` alone still uses http for loopback (an https registry
  answers 400). Use :meth:`tests.harness.tls.TLSFiles.hosts_dir`.
- dockerd accepts any certificate on 127.0.0.0/8 (insecure by default), so https works without
  ``/etc/docker/certs.d``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.push import skopeo_tls_args
from tests.harness.containerd import Containerd
from tests.harness.dockerd import Dockerd

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class ClientError(RuntimeError):
    """A client command failed; ``stderr`` is what it printed."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(self.cmd)} failed ({returncode}):\n{stderr.strip() or stdout.strip()}")


@dataclass
class PullResult:
    """What a client pulled.

    ``digest``: top-level manifest digest (the list's for lists). ``digests``: every manifest
    digest the client recorded (e.g. podman's RepoDigests: list + chosen instance).
    ``image_id``: client's image id where it has one (config digest for podman/docker).
    """

    digest: str
    digests: list[str] = field(default_factory=list)
    image_id: str | None = None
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""


def _run(
    cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise ClientError(cmd, -1, out, f"timed out after {timeout}s\n{err}") from e
    if res.returncode != 0:
        raise ClientError(cmd, res.returncode, res.stdout, res.stderr)
    return res


_POLICY: str | None = None


def policy_path() -> str:
    """A containers ``policy.json`` accepting anything, private to this process.

    skopeo/podman read ``/etc/containers/policy.json`` otherwise; a fresh CI machine may lack
    it or carry a stricter one, and the harness must not edit /etc.
    """
    global _POLICY
    if _POLICY is None or not Path(_POLICY).exists():
        d = tempfile.mkdtemp(prefix="harness-policy-")
        atexit.register(shutil.rmtree, d, True)
        p = Path(d) / "policy.json"
        p.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        _POLICY = str(p)
    return _POLICY


def skopeo_copy(
    src: str,
    dest: str,
    *,
    all_images: bool = True,
    preserve_digests: bool = False,
    src_tls_verify: bool = True,
    src_cert_dir: str | os.PathLike[str] | None = None,
    dest_tls_verify: bool = True,
    dest_cert_dir: str | os.PathLike[str] | None = None,
    override_arch: str | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 180,
    policy: str | os.PathLike[str] | None = None,
    registries_d: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> PullResult:
    """``skopeo copy [--all] SRC DEST`` (full transport references, e.g. ``docker://…``, ``dir:…``).

    ``digest`` is what skopeo wrote with ``--digestfile``: the digest of the top-level manifest as
    written to DEST (for ``oci:`` of a Docker image that is the converted OCI digest).
    ``policy``/``registries_d``: a signature policy and ``registries.d`` (default: accept anything,
    the system's registries.d); ``env`` e.g. ``GNUPGHOME`` for ``--sign-by``.
    """
    with tempfile.TemporaryDirectory(prefix="harness-skopeo-") as tmp:
        digestfile = Path(tmp) / "digest"
        cmd = ["skopeo", "--policy", str(policy or policy_path())]
        if registries_d:
            cmd += ["--registries.d", str(registries_d)]
        if override_arch:
            cmd += ["--override-arch", override_arch]
        cmd += ["copy", "--quiet", "--digestfile", str(digestfile)]
        if all_images:
            cmd.append("--all")
        if preserve_digests:
            cmd.append("--preserve-digests")
        if src.startswith("docker://"):
            cmd += skopeo_tls_args("src-", src_tls_verify, src_cert_dir)
        if dest.startswith("docker://"):
            cmd += skopeo_tls_args("dest-", dest_tls_verify, dest_cert_dir)
        cmd += [*extra_args, src, dest]
        t = time.monotonic()
        res = _run(cmd, timeout, env)
        digest = digestfile.read_text().strip()
    return PullResult(digest, [digest], None, time.monotonic() - t, res.stdout, res.stderr)


def skopeo_inspect(
    ref: str,
    *,
    raw: bool = False,
    config: bool = False,
    tls_verify: bool = True,
    cert_dir: str | os.PathLike[str] | None = None,
    no_tags: bool = True,
    override_arch: str | None = None,
    timeout: float = 60,
) -> dict[str, object] | bytes:
    """``skopeo inspect`` of a full reference (``docker://host/repo:tag``).

    Returns the raw manifest bytes with ``raw`` (hash them to get the registry's digest), the raw
    config with ``config`` and ``raw``, else skopeo's parsed JSON (``Digest``, ``Architecture``…).
    ``no_tags`` skips the tags/list request (``-n``), which a front end may not serve.
    """
    cmd = ["skopeo", "--policy", policy_path()]
    if override_arch:
        cmd += ["--override-arch", override_arch]
    cmd += ["inspect"]
    if ref.startswith("docker://"):
        cmd += skopeo_tls_args("", tls_verify, cert_dir)
    if raw:
        cmd.append("--raw")
    if config:
        cmd.append("--config")
    if no_tags and not raw and not config:
        cmd.append("--no-tags")
    cmd.append(ref)
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise ClientError(cmd, -1, "", f"timed out after {timeout}s") from e
    if res.returncode != 0:
        raise ClientError(
            cmd, res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
        )
    if raw:
        return res.stdout
    return json.loads(res.stdout)


def _podman_runroot(root: Path) -> Path:
    """A fresh, short (podman allows ≤ 50 characters) runroot for ``root``, the same path for the
    same root: podman records it in its database at the first call and refuses another one
    later ("database configuration mismatch"), so calls on one store must agree."""
    runroot = Path("/tmp") / f"pm-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}"
    shutil.rmtree(runroot, ignore_errors=True)
    runroot.mkdir(mode=0o700)
    return runroot


def _podman_base(root: Path, runroot: Path, storage_driver: str) -> list[str]:
    return [
        "podman",
        "--root", str(root),
        "--runroot", str(runroot),
        "--storage-driver", storage_driver,
        "--events-backend", "file",
        "--cgroup-manager", "cgroupfs",
        "--tmpdir", str(runroot / "tmp"),
    ]  # fmt: skip


def podman_image_inspect(
    ref: str, fmt: str, *, root: str | os.PathLike[str], storage_driver: str = "vfs", timeout: float = 60
) -> str:
    """``podman image inspect --format FMT REF`` in the storage a :func:`podman_pull` filled."""
    root = Path(root).resolve()
    runroot = _podman_runroot(root)
    try:
        cmd = [*_podman_base(root, runroot, storage_driver), "image", "inspect"]
        return _run([*cmd, "--format", fmt, ref], timeout, {"TMPDIR": str(runroot)}).stdout.strip()
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def podman_pull(
    ref: str,
    *,
    root: str | os.PathLike[str],
    tls_verify: bool = True,
    cert_dir: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    timeout: float = 180,
    policy: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    storage_driver: str = "vfs",
    storage_conf: str | os.PathLike[str] | None = None,
    log_level: str | None = None,
) -> PullResult:
    """``podman pull`` into its own storage at ``root`` (vfs unless ``storage_driver``; use a fresh
    root per case, or the same one to pull into a store that already holds other images).

    ``policy``: a signature policy (default: accept anything). ``env``: e.g. ``HOME`` whose
    ``.config/containers/registries.d`` podman then reads instead of the system's (podman has no
    ``--registries.d`` option). ``storage_conf``: a ``storage.conf`` (``CONTAINERS_STORAGE_CONF``)
    for what has no option, e.g. ``[storage.options] pull_options`` (partial pulls); ``--root``,
    ``--runroot`` and ``--storage-driver`` still win over it. ``log_level``: ``debug`` puts
    containers/image's decisions (e.g. "Retrieved partial blob") in ``stderr``.

    ``ref`` is ``host:port/repo:tag`` or ``…@sha256:…`` (no transport). ``digest`` is podman's
    ``.Digest`` of the pulled image (the list digest when pulling a list), ``digests`` its
    RepoDigests (list + selected instance), ``image_id`` the config digest.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    runroot = _podman_runroot(root)
    base = _podman_base(root, runroot, storage_driver)
    env = {**(env or {}), "TMPDIR": str(runroot)}
    if storage_conf is not None:
        env["CONTAINERS_STORAGE_CONF"] = str(storage_conf)
    if log_level:
        base += ["--log-level", log_level]
    try:
        cmd = [*base, "pull", "--quiet", "--signature-policy", str(policy or policy_path())]
        cmd += skopeo_tls_args("", tls_verify, cert_dir)
        if arch:
            cmd += ["--arch", arch]
        t = time.monotonic()
        res = _run([*cmd, ref], timeout, env)
        seconds = time.monotonic() - t
        info = _run(
            [
                *base,
                "image",
                "inspect",
                "--format",
                "{{json .Digest}}|{{json .RepoDigests}}|{{json .ID}}",
                ref,
            ],
            60,
            env,
        )
        digest_s, repo_digests_s, image_id_s = info.stdout.strip().split("|")
        repo_digests = [d.rsplit("@", 1)[-1] for d in json.loads(repo_digests_s) or []]
        return PullResult(
            json.loads(digest_s), repo_digests, json.loads(image_id_s), seconds, res.stdout, res.stderr
        )
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def ctr_pull(
    containerd: Containerd,
    ref: str,
    *,
    namespace: str | None = None,
    platform: str | None = "linux/amd64",
    all_platforms: bool = False,
    hosts_dir: str | os.PathLike[str] | None = None,
    plain_http: bool = False,
    skip_verify: bool = False,
    timeout: float = 180,
) -> PullResult:
    """``ctr images pull --snapshotter native`` into a fresh namespace (cached content would hide
    what the registry serves).

    ``digest`` is the image's target digest from ``ctr images ls`` (the list digest for lists).
    For an https registry on 127.0.0.1 pass ``hosts_dir`` (see module docstring).
    """
    ns = namespace or f"h{uuid.uuid4().hex[:12]}"
    cmd = ["ctr", "--address", containerd.address, "-n", ns, "images", "pull", "--snapshotter", "native"]
    if all_platforms:
        cmd.append("--all-platforms")
    elif platform:
        cmd += ["--platform", platform]
    if hosts_dir:
        cmd += ["--hosts-dir", str(hosts_dir)]
    if plain_http:
        cmd.append("--plain-http")
    if skip_verify:
        cmd.append("--skip-verify")
    t = time.monotonic()
    res = _run([*cmd, ref], timeout)
    seconds = time.monotonic() - t
    ls = _run(["ctr", "--address", containerd.address, "-n", ns, "images", "ls"], 30)
    for line in ls.stdout.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == ref:
            return PullResult(parts[2], [parts[2]], None, seconds, res.stdout, res.stderr)
    raise ClientError(cmd, 0, ls.stdout, f"pulled, but {ref} is not in `ctr images ls` of namespace {ns}")


def docker_pull(
    dockerd: Dockerd, ref: str, *, platform: str | None = None, remove: bool = False, timeout: float = 180
) -> PullResult:
    """``docker pull`` through the harness dockerd.

    ``digest`` is the ``Digest:`` line docker prints (the list digest for lists); ``digests`` the
    image's RepoDigests; ``image_id`` its config digest. ``remove`` deletes the image afterwards
    so the next pull of the same content is a real download again.
    """
    cmd = ["docker", "-H", dockerd.host, "pull"]
    if platform:
        cmd += ["--platform", platform]
    cmd.append(ref)
    env = {"DOCKER_CONFIG": str(dockerd.docker_config)}
    t = time.monotonic()
    res = _run(cmd, timeout, env)
    seconds = time.monotonic() - t
    m = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", res.stdout, re.M)
    if not m:
        raise ClientError(cmd, 0, res.stdout, "docker pull printed no Digest line")
    info = _run(
        [
            "docker",
            "-H",
            dockerd.host,
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}|{{json .Id}}",
            ref,
        ],
        60,
        env,
    )
    repo_digests_s, image_id_s = info.stdout.strip().split("|")
    repo_digests = [d.rsplit("@", 1)[-1] for d in json.loads(repo_digests_s) or []]
    if remove:
        with contextlib.suppress(ClientError):
            _run(["docker", "-H", dockerd.host, "image", "rm", "--force", ref], 60, env)
    return PullResult(m.group(1), repo_digests, json.loads(image_id_s), seconds, res.stdout, res.stderr)


def oci_layout_digest(layout: str | os.PathLike[str], ref_name: str) -> str:
    """Digest of the ``index.json`` entry named ``ref_name`` in an OCI layout (skopeo ``oci:`` output)."""
    index = json.loads((Path(layout) / "index.json").read_text())
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name:
            return str(m["digest"])
    raise KeyError(f"{ref_name} not in {layout}/index.json")
