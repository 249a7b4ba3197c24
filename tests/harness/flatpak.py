"""A real Flatpak runtime and app, built offline with flatpak's own tools, and the real client.

``build_flatpaks(workdir)`` makes (``../shared/reference/flatpak.md`` §4):

- the runtime ``org.test.Platform`` (a ``metadata`` file, an empty ``files/``, one file in ``usr/``),
- the app ``org.test.Hello`` whose command is a statically linked C binary (``gcc -static``), so it
  runs inside the empty runtime and prints :data:`HELLO_OUTPUT`,

exports both into an OSTree repo (``flatpak build-export``), bundles them as OCI image layouts
(``flatpak build-bundle --oci``) and re-tags each as ``latest`` (a bundle's ref name is the
Flatpak ref, not a registry tag). ``version`` changes the app's output, for a second release.

:class:`FlatpakUser` runs the ``flatpak`` client with a private ``HOME`` (``--user`` installs),
under ``dbus-run-session``. flatpak 1.14 (libcurl + GnuTLS) trusts only the system CA bundle and
has no per-registry CA option, so with ``ca_cert`` every command runs in a private mount namespace
(``unshare -m``) where the system bundle is bind-mounted over by one that adds the test CA: the
host's ``/etc`` is never modified.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.harness import clients

APP_ID = "org.test.Hello"
RUNTIME_ID = "org.test.Platform"
BRANCH = "master"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def arch() -> str:
    """Flatpak's name for this machine's architecture (``x86_64``)."""
    return subprocess.run(
        ["flatpak", "--default-arch"], capture_output=True, text=True, check=True
    ).stdout.strip()


def hello_output(version: int) -> str:
    return f"Hello from {APP_ID} version {version}"


@dataclass(frozen=True)
class FlatpakBuild:
    """What :func:`build_flatpaks` made: two OCI layouts, each with one manifest tagged ``latest``."""

    app_layout: Path
    runtime_layout: Path
    app_ref: str
    runtime_ref: str
    output: str
    app_digest: str
    runtime_digest: str
    #: the layouts exactly as ``flatpak build-bundle --oci`` wrote them (ref name = Flatpak ref)
    app_bundle: Path
    runtime_bundle: Path


class FlatpakError(RuntimeError):
    pass


def _run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if res.returncode != 0:
        raise FlatpakError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}\n{res.stdout}")
    return res


def build_flatpaks(workdir: str | os.PathLike[str], *, version: int = 1) -> FlatpakBuild:
    """Build runtime and app under ``workdir`` (its own HOME: the build installs the runtime)."""
    work = Path(workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    home = work / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share")}
    env.pop("FLATPAK_USER_DIR", None)
    a = arch()
    repo = work / "repo"

    rt = work / "runtime"
    (rt / "files").mkdir(parents=True)
    (rt / "usr").mkdir()
    (rt / "usr" / "README").write_text("an empty runtime for tests\n")
    (rt / "metadata").write_text(
        f"[Runtime]\nname={RUNTIME_ID}\nruntime={RUNTIME_ID}/{a}/{BRANCH}\nsdk={RUNTIME_ID}/{a}/{BRANCH}\n"
    )
    _run(["flatpak", "build-export", "--runtime", str(repo), str(rt), BRANCH], env)
    _run(["flatpak", "--user", "remote-add", "--no-gpg-verify", "build", str(repo)], env)
    _run(["flatpak", "--user", "install", "-y", "--noninteractive", "build", RUNTIME_ID], env)

    src = work / "hello.c"
    src.write_text(f'#include <stdio.h>\nint main(void) {{ puts("{hello_output(version)}"); return 0; }}\n')
    app = work / "app"
    _run(["flatpak", "build-init", str(app), APP_ID, RUNTIME_ID, RUNTIME_ID, BRANCH], env)
    (app / "files" / "bin").mkdir(parents=True, exist_ok=True)
    _run(["gcc", "-static", "-Os", "-o", str(app / "files" / "bin" / "hello"), str(src)], env)
    _run(["flatpak", "build-finish", str(app), "--command=hello"], env)
    _run(["flatpak", "build-export", str(repo), str(app), BRANCH], env)

    app_ref = f"app/{APP_ID}/{a}/{BRANCH}"
    runtime_ref = f"runtime/{RUNTIME_ID}/{a}/{BRANCH}"
    layouts: dict[str, tuple[Path, str]] = {}
    bundles: dict[str, Path] = {}
    for kind, ident, ref in (("app", APP_ID, app_ref), ("runtime", RUNTIME_ID, runtime_ref)):
        bundle = work / f"bundle-{kind}"
        extra = ["--runtime"] if kind == "runtime" else []
        _run(["flatpak", "build-bundle", *extra, "--oci", str(repo), str(bundle), ident, BRANCH], env)
        out = work / f"oci-{kind}"
        res = clients.skopeo_copy(f"oci:{bundle}:{ref}", f"oci:{out}:latest", preserve_digests=True)
        layouts[kind] = (out, res.digest)
        bundles[kind] = bundle
    return FlatpakBuild(
        app_layout=layouts["app"][0],
        runtime_layout=layouts["runtime"][0],
        app_ref=app_ref,
        runtime_ref=runtime_ref,
        output=hello_output(version),
        app_digest=layouts["app"][1],
        runtime_digest=layouts["runtime"][1],
        app_bundle=bundles["app"],
        runtime_bundle=bundles["runtime"],
    )


def run_session(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own session, output to files, then kill the session's leftovers.

    Why: ``flatpak install`` has D-Bus start ``flatpak-oci-authenticator``, which outlives
    ``dbus-run-session`` and holds inherited pipes open; reading pipes would wait for it forever,
    and it would linger after the test. Files and a process-group kill avoid both.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, returncode, out.read(), err.read())


class FlatpakUser:
    """The real ``flatpak`` client for one user: its own HOME, ``--user`` installation."""

    def __init__(
        self, home: str | os.PathLike[str], *, ca_cert: str | os.PathLike[str] | None = None
    ) -> None:
        self.home = Path(home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        # Sockets (the D-Bus proxy of `flatpak run`) live in XDG_RUNTIME_DIR, else under HOME;
        # a pytest HOME is longer than a socket path may be (108 bytes): a short private dir.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="fp-"))
        atexit.register(shutil.rmtree, self.runtime_dir, True)
        self.bundle: Path | None = None
        if ca_cert is not None:
            self.bundle = self.home / "ca-bundle.crt"
            self.bundle.write_bytes(SYSTEM_CA.read_bytes() + b"\n" + Path(ca_cert).read_bytes())

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "DBUS_", "FLATPAK_"))}
        env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / ".local/share"),
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            LC_ALL="C.UTF-8",
        )
        return env

    def command(self, args: list[str]) -> list[str]:
        cmd = ["dbus-run-session", "--", "flatpak", *args]
        if self.bundle is None:
            return cmd
        # A private mount namespace: the bind mount (and the test CA) exists for this command only.
        script = 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.bundle), *cmd]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``flatpak ARGS``; stop whatever it left behind (see :func:`run_session`)."""
        res = run_session(self.command(list(args)), self.env(), timeout)
        if check and res.returncode != 0:
            raise FlatpakError(
                f"flatpak {' '.join(args)} failed ({res.returncode}):\n{res.stderr}\n{res.stdout}"
            )
        return res

    def remote_add(self, name: str, url: str) -> None:
        self.run("--user", "remote-add", "--no-gpg-verify", name, url)

    def remote_ls(self, name: str) -> dict[str, str]:
        """``{ref: commit}`` of what the remote lists (for OCI remotes the commit is the digest's hex)."""
        out = self.run("--user", "remote-ls", "--all", "--columns=ref,commit", name).stdout
        refs = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and "/" in parts[0]:
                refs[parts[0]] = parts[1]
        return refs


def available() -> list[str]:
    """The binaries this module needs that are missing."""
    return [
        b for b in ("flatpak", "dbus-run-session", "gcc", "skopeo", "unshare", "bwrap") if not shutil.which(b)
    ]
