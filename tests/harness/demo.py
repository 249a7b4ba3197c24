"""``make demo``: the whole chain end to end on one machine, loopback only, in about 30 s (15 s again).

candidate registry (docker-registry, TLS) → Pulp sync → ``fedora-mirror promote`` (copy_tags into
a stable repository) → ``fedora-mirror publish`` (MirrorExporter task) → ``fedora-mirror verify`` →
nginx (master tree, TLS) + crane_fedora (gunicorn, TLS) → skopeo and podman pull every image
through crane; digests are compared with the fixtures and with what Pulp holds.

Why a script and not a test: it is the first thing a newcomer runs, so it prints each step with
its duration and the command a user would type to do the same by hand, and leaves nothing
running. Every daemon is started by the harness in its own process group, recorded in
``<state>/pids.json`` (Pulp keeps its own ``pulp/pids.json``) and stopped on exit, on Ctrl-C or
SIGTERM and on failure. State lives under ``$FEDORA_MIRROR_STATE/demo`` (default ``.state/demo``)
and is reused: a second run skips the migrations, keeps the ports if they are still free and finds
the remotes, repositories and exporter it created by name, so it takes seconds.
``--down`` stops whatever a killed run left behind and removes the state.

Usage: ``python -m tests.harness.demo [--keep] | --down``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

NAMESPACE = "fedora"  # registry names in the mirror: fedora/<image>
EXPORTER = "demo-containers"
STEPS = 14


class DemoError(RuntimeError):
    """A step failed; ``log`` names the file that explains why."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class Interrupted(BaseException):
    """SIGINT/SIGTERM: unwinds like KeyboardInterrupt, so every ``finally`` stops its services."""


def state_root() -> Path:
    """``$FEDORA_MIRROR_STATE/demo`` (the Makefile exports it), else ``./.state/demo``."""
    return (Path(os.environ.get("FEDORA_MIRROR_STATE") or ".state") / "demo").resolve()


def rel(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it in the checkout (relative when below the cwd)."""
    p = Path(path)
    with contextlib.suppress(ValueError):
        return str(p.relative_to(Path.cwd()))
    return str(p)


def one_line(exc: BaseException) -> str:
    """First non-empty line of an exception's text (harness errors append whole log tails)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip().rstrip(":")
    return type(exc).__name__


def client_reason(exc: BaseException) -> str:
    """The useful line of a failed client: skopeo/podman's last stderr line (its ``msg=``)."""
    stderr = getattr(exc, "stderr", "") or ""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return one_line(exc)
    last = lines[-1]
    if 'msg="' in last:
        last = last.split('msg="', 1)[1].rsplit('"', 1)[0]
    return f"{Path(getattr(exc, 'cmd', ['client'])[0]).name}: {last}"


def port_free(port: int) -> bool:
    """True if nobody holds ``127.0.0.1:port`` right now (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the daemons do: a port whose last connections sit in TIME_WAIT is reusable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- output ------------------------------------------------------------------------------------


class Step:
    """One step being run: its title may be refined while it runs (e.g. which PostgreSQL)."""

    def __init__(self, no: int, what: str, log: Path | None) -> None:
        self.no, self.what, self.log = no, what, log
        self.lines: list[str] = []

    def cmd(self, text: str) -> None:
        """The equivalent command a user would type (printed under the step line)."""
        self.lines.append(f"        $ {text}")

    def note(self, text: str) -> None:
        """A result line (printed under the step line)."""
        self.lines.append(f"        → {text}")


class Console:
    """Step lines on stdout (``[ n/N] what  1.2 s`` + commands + results); details in a log file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "a", encoding="utf-8")  # closed at exit: lives as long as the run
        self.current: Step | None = None
        self.count = 0
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, what: str, log: Path | None = None) -> Iterator[Step]:
        """Time one step; print its line once it is done (then its commands and results)."""
        self.count += 1
        st = self.current = Step(self.count, what, log)
        self.log(f"\n===== [{st.no}/{STEPS}] {what}")
        t = time.monotonic()
        yield st
        took = time.monotonic() - t
        print(f"[{st.no:2d}/{STEPS}] {st.what:<66} {took:6.1f} s", flush=True)
        for line in st.lines:
            print(line, flush=True)
        self.log(f"      done in {took:.2f} s")

    def log(self, text: str) -> None:
        """Append to the run log (command output, tracebacks)."""
        self._log.write(text.rstrip("\n") + "\n")
        self._log.flush()


# -- pid bookkeeping (what --down stops after a kill -9) ------------------------------------


class PidFile:
    """``<state>/pids.json``: ``{name: pid}`` of every daemon the run started and still runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def add(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.path.write_text(json.dumps({**self.read(), name: pid}))

    def remove(self, name: str) -> None:
        pids = self.read()
        if pids.pop(name, None) is not None:
            self.path.write_text(json.dumps(pids))

    def stop_leftovers(self, marker: str) -> list[str]:
        """Stop recorded process groups whose command line names ``marker`` (our state dir).

        The check protects other people's processes that got a recorded pid after ours ended:
        only a group leader whose argv mentions this demo's state directory is signalled.
        """
        stopped = []
        for name, pid in self.read().items():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                leader = os.getpgid(pid) == pid
            except (OSError, ProcessLookupError):
                continue
            if marker in cmdline and leader:
                kill_group(pid)
                stopped.append(f"{name} (pid {pid})")
        self.path.unlink(missing_ok=True)
        return stopped


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process group, SIGKILL whatever is left after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# -- the demo ---------------------------------------------------------------------------------


class Demo:
    """One run of the chain; attributes carry what later steps need; ``stop()`` ends it all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.out = Console(root / "demo.log")
        self.pids = PidFile(root / "pids.json")
        self.ports_path = root / "ports.json"
        try:
            self.ports: dict[str, int] = json.loads(self.ports_path.read_text())
        except (OSError, ValueError):
            self.ports = {}
        self.services: list[tuple[str, Any]] = []  # started harness services, stopped newest first
        self.pulp: Any = None
        self.client: Any = None
        self.tls: Any = None
        self.registry: Any = None
        self.crane: Any = None
        self.images: dict[str, Any] = {}
        self.stable_versions: dict[str, str] = {}
        self.pulp_digests: dict[str, str] = {}
        self.exporter: dict[str, Any] = {}
        self.tree = root / "pulp" / "exports" / "containers"
        self.metadata = root / "pulp" / "exports" / "metadata"

    # -- helpers ---------------------------------------------------------------------------

    def port(self, key: str) -> int:
        """Last run's port for ``key`` if it is free again, else a fresh one (remembered).

        Stable ports keep the Pulp remote URL, the exporter's master URL and the crane config
        unchanged between runs, so a second publish writes nothing.
        """
        from tests.harness.ports import free_port

        port = self.ports.get(key)
        if not port or not port_free(port):
            port = free_port()
        self.ports[key] = port
        self.ports_path.write_text(json.dumps(self.ports))
        return port

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> str:
        """Run a command, log its output, return stdout; raise DemoError with its last stderr line."""
        self.out.log("$ " + shlex.join(argv))
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, **(env or {})},
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(
                f"{Path(argv[0]).name} timed out after {timeout:.0f} s", self.out.log_path
            ) from exc
        self.out.log(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise DemoError(f"{Path(argv[0]).name} exited {proc.returncode}: {last}", self.out.log_path)
        return proc.stdout

    def fedora_mirror(self, *args: str) -> str:
        """``fedora-mirror ARGS`` from this venv, configured through the environment like Bodhi."""
        from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER

        env = {"PULP_URL": self.pulp.base_url, "PULP_USERNAME": ADMIN_USER, "PULP_PASSWORD": ADMIN_PASSWORD}
        return self.run([str(Path(sys.executable).parent / "fedora-mirror"), *args], env=env)

    def started(self, name: str, service: Any) -> None:
        """Track a started harness service for ``stop()`` and for ``--down``."""
        self.services.append((name, service))
        self.pids.add(name, service.pid)

    def find(self, endpoint: str, name: str) -> dict[str, Any] | None:
        """The object called ``name`` at a list endpoint, or None (names are unique in Pulp)."""
        results = self.client.request("GET", endpoint, params={"name": name}).get("results") or []
        return results[0] if results else None

    def ensure(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Find ``body['name']`` at ``endpoint`` or create it; return (object, created).

        An existing object whose fields differ from ``body`` (e.g. the registry moved to another
        port) is updated; Pulp updates remotes and exporters in a task, which is awaited.
        """
        found = self.find(endpoint, body["name"])
        if found is None:
            return self.client.request("POST", endpoint, json=body), True
        changed = {k: v for k, v in body.items() if k not in ("ca_cert",) and found.get(k) != v}
        if changed:
            self.out.log(f"updating {found['pulp_href']}: {changed}")
            answer = self.client.request("PATCH", found["pulp_href"], json=changed)
            if "task" in answer:
                self.client.wait(answer["task"], timeout=120)
            found = self.client.request("GET", found["pulp_href"])
        return found, False

    # -- the steps -------------------------------------------------------------------------

    def step_postgres(self) -> None:
        from tests.harness.pulp import PulpServer

        # Own cluster even when a server answers on :5432: all demo state stays in one directory.
        self.pulp = PulpServer(self.root / "pulp", shared_postgres=False)
        pg = self.pulp.postgres
        with self.out.step("PostgreSQL", pg.log_path) as st:
            db = pg.start()
            if pg.mode == "cluster":
                st.what = f"PostgreSQL (throwaway cluster under {rel(pg.pg_dir)})"
                st.cmd(f"initdb -D {rel(pg.data_dir)} -U postgres --auth=trust -E UTF8   # first run only")
                st.cmd(
                    f"pg_ctl -D {rel(pg.data_dir)} -o '-p {db.port} -c listen_addresses=127.0.0.1' -w start"
                )
            elif pg.mode == "shared":
                st.what = f"PostgreSQL (own database on the local server {db.host}:{db.port})"
                st.cmd(
                    f"psql -h {db.host} -p {db.port} -U postgres -c 'CREATE DATABASE {db.name}'   # first run"
                )
            else:
                st.what = f"PostgreSQL ({db.host}:{db.port}/{db.name}, from PULP_TEST_DATABASE_URL)"

    def step_pulp(self) -> None:
        from pulp_fedora_mirror.client import PulpClient
        from tests.harness.pulp import ADMIN_PASSWORD, ADMIN_USER

        pulp = self.pulp
        marker = pulp.state_dir / "migrated.json"
        before = marker.stat().st_mtime_ns if marker.exists() else None
        with self.out.step("Pulp: migrate, API, content app, worker", pulp.logs_dir) as st:
            try:
                pulp.start()
            except Exception as exc:
                raise DemoError(one_line(exc), pulp.logs_dir) from exc
            migrated = not marker.exists() or marker.stat().st_mtime_ns != before
            settings = rel(pulp.settings_path)
            st.cmd(
                f"export PULP_SETTINGS={settings}; pulpcore-manager migrate"
                + ("" if migrated else "   # skipped: already migrated for this code")
            )
            st.cmd(
                f"pulpcore-api -b 127.0.0.1:{pulp.api_port} & "
                f"pulpcore-content -b 127.0.0.1:{pulp.content_port} & pulpcore-worker &"
            )
            st.cmd(f"curl -s {pulp.api_root}status/ | jq .online_workers")
            self.client = PulpClient(base_url=pulp.base_url, username=ADMIN_USER, password=ADMIN_PASSWORD)

    def step_registry(self) -> None:
        from tests.harness.registry import Registry
        from tests.harness.tls import TLSFiles

        with self.out.step("docker-registry (TLS) as the candidate registry") as st:
            self.tls = TLSFiles.create(self.root / "tls")
            self.registry = Registry(self.root / "registry", tls=self.tls, port=self.port("registry"))
            st.log = self.registry.log_path
            self.registry.start()
            self.started("registry", self.registry)
            st.cmd(f"docker-registry serve {rel(self.registry.config_path)}   # {self.registry.url}")

    def step_build(self) -> None:
        from fixtures.build_images import build_images

        out_dir = self.root / "images"
        with self.out.step("build the 4 fixture images (deterministic, no daemon)", self.out.log_path) as st:
            self.images = build_images(out_dir)
            st.cmd(f"python -m fixtures.build_images {rel(out_dir)}")
            for image in self.images.values():
                kind = f"list of {len(image.children)}" if image.is_list else "image"
                st.note(f"{image.name:<14} {image.digest[:19]}…  {kind}, {len(image.blobs)} blobs")

    def step_push(self) -> None:
        from fixtures.push import PushError, push_image, verify_image

        with self.out.step("push them as candidates with skopeo", self.registry.log_path) as st:
            cert_dir = self.tls.cert_dir()
            for image in self.images.values():
                try:
                    push_image(image, self.registry.host, tls_verify=True, cert_dir=str(cert_dir))
                    verify_image(image, self.registry.url, cafile=str(self.tls.ca_cert))
                except PushError as exc:
                    raise DemoError(one_line(exc), self.registry.log_path) from exc
            names = " ".join(self.images)
            st.cmd(
                f"for i in {names}; do skopeo copy --all --preserve-digests --dest-cert-dir {rel(cert_dir)} "
                f"dir:{rel(self.root / 'images' / 'dir')}/$i "
                f"docker://{self.registry.host}/test/$i:latest; done"
            )

    def step_sync(self) -> None:
        with self.out.step(
            "Pulp: remotes + candidate repositories, sync", self.pulp.logs_dir / "worker.log"
        ) as st:
            ca = self.tls.ca_cert.read_text()
            tasks = []
            created = 0
            for name, image in self.images.items():
                remote, new_remote = self.ensure(
                    "remotes/container/container/",
                    {
                        "name": f"demo-{name}",
                        "url": self.registry.url,
                        "upstream_name": image.repo(),
                        "policy": "immediate",
                        "ca_cert": ca,
                    },
                )
                repo, new_repo = self.ensure(
                    "repositories/container/container/", {"name": f"demo-{name}-candidate"}
                )
                self.ensure("repositories/container/container/", {"name": f"demo-{name}-stable"})
                created += new_remote + new_repo
                answer = self.client.request(
                    "POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]}
                )
                tasks.append(answer["task"])
            versions = 0
            for href in tasks:  # the worker runs them one after the other; wait for all
                task = self.client.wait(href, timeout=300)
                versions += sum("/versions/" in h for h in task.created_resources)
            b = f"{self.pulp.api_root}"
            st.cmd(
                f"curl -u admin:password -H Content-Type:application/json -d "
                f'\'{{"name":"demo-single-oci","url":"{self.registry.url}","upstream_name":'
                f'"test/single-oci","policy":"immediate","ca_cert":"…"}}\' {b}remotes/container/container/'
            )
            st.cmd(
                f'curl … -d \'{{"name":"demo-single-oci-candidate"}}\' {b}repositories/container/container/'
                "   # and -stable"
            )
            st.cmd('curl … -d \'{"remote":"<remote href>"}\' <candidate href>sync/   # for each image')
            st.note(
                f"{created} objects created, {len(tasks)} syncs, {versions} new repository versions"
                + ("" if versions else " (candidates unchanged)")
            )

    def step_promote(self) -> None:
        with self.out.step("promote tag latest into the stable repositories", self.out.log_path) as st:
            new = 0
            for name in self.images:
                line = self.fedora_mirror(
                    "promote",
                    "--from",
                    f"demo-{name}-candidate",
                    "--to",
                    f"demo-{name}-stable",
                    "--tag",
                    "latest",
                )
                new += "new version" in line
            st.cmd(f"export PULP_URL={self.pulp.base_url} PULP_USERNAME=admin PULP_PASSWORD=password")
            st.cmd(
                f"for i in {' '.join(self.images)}; do "
                "fedora-mirror promote --from demo-$i-candidate --to demo-$i-stable --tag latest; done"
            )
            st.note(f"{new} new stable versions" + ("" if new else " (tags already promoted)"))

    def make_crane(self) -> None:
        """Build (not start) nginx + crane now: the exporter's master URL is nginx's URL."""
        from tests.harness.crane import CraneStack

        self.crane = CraneStack(self.root / "crane", self.tree, self.metadata, tls=self.tls)
        # Same ports as last time when free: the exporter's master_url stays valid.
        self.crane.master.port = self.port("nginx-master")
        self.crane.crane.port = self.port("crane")

    def step_exporter(self) -> None:
        self.make_crane()
        with self.out.step(
            "Pulp: MirrorExporter (create or reuse by name)", self.pulp.logs_dir / "api.log"
        ) as st:
            self.tree.mkdir(parents=True, exist_ok=True)
            self.metadata.mkdir(parents=True, exist_ok=True)
            body = {
                "name": EXPORTER,
                "path": str(self.tree),
                "metadata_path": str(self.metadata),
                "master_url": self.crane.master_url,
                "mirror_url": None,
                "module": "containers",
            }
            self.exporter, created = self.ensure("exporters/fedora_mirror/mirror/", body)
            shown = {**body, "path": rel(self.tree), "metadata_path": rel(self.metadata)}
            st.cmd(
                f"curl … -d '{json.dumps(shown, separators=(',', ':'))}' "
                f"{self.pulp.api_root}exporters/fedora_mirror/mirror/"
            )
            st.note(("created " if created else "reused ") + self.exporter["pulp_href"])

    def step_publish(self) -> None:
        with self.out.step("publish each stable repository (MirrorExporter task)", self.out.log_path) as st:
            totals = {"manifests": 0, "blobs": 0, "files_written": 0, "bytes_written": 0}
            for name in self.images:
                raw = self.fedora_mirror(
                    "publish",
                    "--repository",
                    f"demo-{name}-stable",
                    "--exporter",
                    EXPORTER,
                    "--name",
                    f"{NAMESPACE}/{name}",
                    "--json",
                )
                export = json.loads(raw).get("export") or {}
                summary = export.get("summary") or {}
                for k in totals:
                    totals[k] += int(summary.get(k) or 0)
                self.stable_versions[name] = (export.get("params") or {}).get("repository_version", "")
            st.cmd(
                f"for i in {' '.join(self.images)}; do fedora-mirror publish --repository demo-$i-stable "
                f"--exporter {EXPORTER} --name {NAMESPACE}/$i; done"
            )
            st.note(
                f"{totals['manifests']} manifests, {totals['blobs']} blobs; "
                f"{totals['files_written']} files written ({totals['bytes_written']} bytes)"
            )

    def step_verify(self) -> None:
        with self.out.step(
            "fedora-mirror verify (hash every file, check references)", self.out.log_path
        ) as st:
            out = self.fedora_mirror("verify", str(self.tree), "--metadata-dir", str(self.metadata))
            st.cmd(f"fedora-mirror verify {rel(self.tree)} --metadata-dir {rel(self.metadata)}")
            st.note(" ".join(out.split()))

    def step_crane(self) -> None:
        with self.out.step("nginx (master tree, TLS) + crane_fedora (gunicorn, TLS)") as st:
            c = self.crane
            c.write_config()
            st.log = c.master.log_path
            c.master.start()
            self.started("nginx-master", c.master)
            st.log = c.crane.log_path
            c.crane.start()
            self.started("crane", c.crane)
            st.cmd(f"nginx -p {rel(c.master.state_dir)} -c {rel(c.master.conf_path)}   # {c.master_url}")
            st.cmd(
                f"CRANE_CONFIG_PATH={rel(c.config_path)} gunicorn --bind {c.crane_host} "
                f"--certfile {rel(self.tls.cert)} --keyfile {rel(self.tls.key)} crane_fedora.wsgi:application"
            )

    def pulp_tag_digest(self, name: str) -> str:
        """Digest of the manifest tagged ``latest`` in the exported stable version, asked of Pulp."""
        version = self.stable_versions.get(name) or ""
        tags = self.client.request(
            "GET", "content/container/tags/", params={"repository_version": version, "name": "latest"}
        ).get("results")
        if not tags:
            raise DemoError(f"Pulp has no tag 'latest' in {version or 'the stable repository'}")
        return str(self.client.request("GET", tags[0]["tagged_manifest"])["digest"])

    def step_pull(self) -> tuple[int, int]:
        from fixtures.push import PushError, verify_image
        from tests.harness import clients

        pulls_dir = self.root / "pulls"
        shutil.rmtree(pulls_dir, ignore_errors=True)  # fresh client storage: real downloads each run
        (pulls_dir / "skopeo").mkdir(parents=True)
        cert_dir = self.tls.cert_dir()
        ok = pulls = 0
        with self.out.step(
            "pull every image through crane with skopeo and podman", self.crane.crane.log_path
        ) as st:
            for name, image in self.images.items():
                ref = f"{self.crane.crane_host}/{NAMESPACE}/{name}:latest"
                want = image.digest
                in_pulp = self.pulp_tag_digest(name)
                try:
                    sk = clients.skopeo_copy(
                        f"docker://{ref}",
                        f"dir:{pulls_dir / 'skopeo' / name}",
                        preserve_digests=True,
                        src_cert_dir=cert_dir,
                    )
                    pm = clients.podman_pull(
                        ref, root=pulls_dir / "podman" / name, cert_dir=cert_dir, arch="amd64"
                    )
                    verify_image(
                        image, self.crane.crane_url, namespace=NAMESPACE, cafile=str(self.tls.ca_cert)
                    )
                except (clients.ClientError, PushError) as exc:
                    self.out.log(str(exc))
                    raise DemoError(f"pull of {ref}: {client_reason(exc)}", self.out.log_path) from exc
                pulls += 2
                self.out.log(f"{name}: fixture {want} pulp {in_pulp} skopeo {sk.digest} podman {pm.digest}")
                if not (want == in_pulp == sk.digest == pm.digest):
                    raise DemoError(
                        f"{name}: digests differ: fixture {want}, Pulp {in_pulp}, skopeo {sk.digest}, "
                        f"podman {pm.digest}",
                        self.out.log_path,
                    )
                ok += 1
                st.note(f"{ref}  {want[:19]}…  = fixture = Pulp = skopeo = podman")
            st.cmd(
                f"skopeo copy --all --preserve-digests --src-cert-dir {rel(cert_dir)} "
                f"docker://{self.crane.crane_host}/{NAMESPACE}/multi-oci:latest dir:/tmp/multi-oci"
            )
            st.cmd(
                f"podman pull --cert-dir {rel(cert_dir)} --arch amd64 "
                f"{self.crane.crane_host}/{NAMESPACE}/multi-oci:latest"
            )
        return ok, pulls

    def step_flatpak(self) -> str:
        """Build a Flatpak app + runtime, push, sync, release, and install it with the real client."""
        import requests

        from tests.harness import clients
        from tests.harness.flatpak import APP_ID, FlatpakError, FlatpakUser, build_flatpaks

        with self.out.step(
            "Flatpak: build, push, sync, release, flatpak install + run", self.out.log_path
        ) as st:
            try:
                build = build_flatpaks(self.root / "flatpak-build")
            except (FlatpakError, clients.ClientError) as exc:
                raise DemoError(f"building the Flatpak: {one_line(exc)}", self.out.log_path) from exc
            ca = self.tls.ca_cert.read_text()
            for key, layout in (("hello", build.app_layout), ("platform", build.runtime_layout)):
                upstream = f"test/flatpak-{key}"
                clients.skopeo_copy(
                    f"oci:{layout}:latest",
                    f"docker://{self.registry.host}/{upstream}:latest",
                    preserve_digests=True,
                    dest_cert_dir=self.tls.cert_dir(),
                )
                remote, _ = self.ensure(
                    "remotes/container/container/",
                    {
                        "name": f"demo-flatpak-{key}",
                        "url": self.registry.url,
                        "upstream_name": upstream,
                        "policy": "immediate",
                        "ca_cert": ca,
                    },
                )
                repo, _ = self.ensure(
                    "repositories/container/container/", {"name": f"demo-flatpak-{key}-candidate"}
                )
                self.ensure("repositories/container/container/", {"name": f"demo-flatpak-{key}-stable"})
                answer = self.client.request(
                    "POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]}
                )
                self.client.wait(answer["task"], timeout=300)
                self.fedora_mirror(
                    "release", "--from", f"demo-flatpak-{key}-candidate",
                    "--to", f"demo-flatpak-{key}-stable", "--tag", "latest",
                    "--exporter", EXPORTER, "--name", f"{NAMESPACE}/flatpak-{key}",
                )  # fmt: skip
            home = self.root / "flatpak-home"
            shutil.rmtree(home, ignore_errors=True)
            user = FlatpakUser(home, ca_cert=self.tls.ca_cert)
            url = f"oci+{self.crane.crane_url}"
            # crane reloads its metadata every second; flatpak caches the index it first fetches
            # (Cache-Control max-age), so wait until crane lists both refs before flatpak asks.
            index = f"{self.crane.crane_url}/index/static?label%3Aorg.flatpak.ref%3Aexists=1&tag=latest"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                listed = requests.get(index, timeout=10, verify=str(self.tls.ca_cert)).text
                if build.app_ref in listed and build.runtime_ref in listed:
                    break
                time.sleep(0.5)
            try:
                user.remote_add("fedora", url)
                user.run("--user", "install", "-y", "--noninteractive", "fedora", APP_ID)
                output = user.run("--user", "run", APP_ID).stdout.strip()
            except FlatpakError as exc:
                self.out.log(str(exc))
                raise DemoError(f"flatpak: {one_line(exc)}", self.out.log_path) from exc
            if output != build.output:
                raise DemoError(
                    f"flatpak run printed {output!r}, expected {build.output!r}", self.out.log_path
                )
            st.cmd("flatpak build-bundle --oci repo oci-app org.test.Hello master  # + --runtime")
            st.cmd(
                f"fedora-mirror release --from demo-flatpak-hello-candidate --to demo-flatpak-hello-stable "
                f"--tag latest --exporter {EXPORTER} --name {NAMESPACE}/flatpak-hello"
            )
            st.cmd(f"flatpak --user remote-add --no-gpg-verify fedora {url}")
            st.cmd(f"flatpak --user install fedora {APP_ID} && flatpak run {APP_ID}")
            st.note(f"{build.app_ref} + {build.runtime_ref} installed; it printed: {output}")
            return output

    def step_home_page(self) -> str:
        """The browsable home page lists every image with the pull command that just worked."""
        import requests

        url = f"{self.crane.crane_url}/"
        with self.out.step(
            "home page: every image listed with its pull command", self.crane.crane.log_path
        ) as st:
            session = requests.Session()
            ca = str(self.tls.ca_cert)  # per request: REQUESTS_CA_BUNDLE would override session.verify
            home = session.get(url, timeout=30, verify=ca)
            if home.status_code != 200 or not home.headers.get("Content-Type", "").startswith("text/html"):
                raise DemoError(f"GET {url}: {home.status_code} {home.headers.get('Content-Type')}")
            for name in self.images:
                repo = f"{NAMESPACE}/{name}"
                if f'href="/r/{repo}"' not in home.text:
                    raise DemoError(f"the home page does not list {repo}", self.crane.crane.log_path)
                page = session.get(f"{url}r/{repo}", timeout=30, verify=ca)
                command = f"podman pull {self.crane.crane_host}/{repo}:latest"
                if page.status_code != 200 or command not in page.text:
                    raise DemoError(f"{url}r/{repo} does not show `{command}`", self.crane.crane.log_path)
                st.note(f"{url}r/{repo}  →  {command}")
            st.cmd(f"curl --cacert {rel(self.tls.ca_cert)} {url}")
        return url

    def run_all(self, keep: bool) -> None:
        """The fourteen steps; an exception ends the run (the caller stops everything)."""
        self.step_postgres()
        self.step_pulp()
        self.step_registry()
        self.step_build()
        self.step_push()
        self.step_sync()
        self.step_promote()
        self.step_exporter()
        self.step_publish()
        self.step_verify()
        self.step_crane()
        ok, pulls = self.step_pull()
        self.step_flatpak()

        home = self.step_home_page()
        total = time.monotonic() - self.out.started
        n = len(self.images)
        print(
            f"demo OK: {n} images, {n} tags, {pulls} pulls, {ok}/{n} digests match "
            f"(fixture = Pulp = skopeo = podman), 1 Flatpak installed and run, total {total:.1f} s",
            flush=True,
        )
        if keep:
            print(
                f"running until Ctrl-C: crane {self.crane.crane_url}  master {self.crane.master_url}  "
                f"Pulp {self.pulp.api_root} (admin/password)  CA {rel(self.tls.ca_cert)}",
                flush=True,
            )
            print(f"home page: {home}  (certificate from the demo CA {rel(self.tls.ca_cert)})", flush=True)
            while True:
                time.sleep(3600)
        print(
            f"home page: {home}  (stopped with the demo; `make demo DEMO_ARGS=--keep` keeps it up)",
            flush=True,
        )

    def stop(self) -> None:
        """Stop every service this run started, newest first, then Pulp and its PostgreSQL."""
        for name, svc in reversed(self.services):
            with contextlib.suppress(Exception):
                svc.stop()
            self.pids.remove(name)
        self.services.clear()
        if self.pulp is not None:
            with contextlib.suppress(Exception):
                self.pulp.stop()  # also removes its pids.json


# -- entry points --------------------------------------------------------------------------


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def up(keep: bool) -> int:
    """Run the demo; stop everything on the way out, whatever happens."""
    root = state_root()
    demo = Demo(root)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    print(
        f"fedora-mirror demo: state in {rel(root)}, loopback only, log {rel(demo.out.log_path)}", flush=True
    )
    code = 0
    try:
        demo.run_all(keep)
    except Interrupted as exc:
        if not keep:
            st = demo.out.current
            where = f" at step {st.no}/{STEPS} ({st.what})" if st else ""
            print(f"demo interrupted ({exc}){where}; stopping everything", file=sys.stderr, flush=True)
            code = 130
    except Exception as exc:
        demo.out.log(traceback.format_exc())
        st = demo.out.current
        log = getattr(exc, "log", None) or (st.log if st else None) or demo.out.log_path
        where = f"step {st.no}/{STEPS} ({st.what})" if st else "setup"
        print(f"demo FAILED at {where}: {one_line(exc)}; see {rel(log)}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.stop()
    return code


def down() -> int:
    """Stop what a killed demo left running (pid files only, checked), then remove its state."""
    from tests.harness.postgres import Postgres, _pg_bin
    from tests.harness.pulp import PulpServer

    root = state_root()
    if not root.exists():
        print(f"demo-down: nothing at {rel(root)}")
        return 0
    stopped = PidFile(root / "pids.json").stop_leftovers(str(root))
    pulp = PulpServer(root / "pulp", shared_postgres=False)
    pulp_pids = PidFile(root / "pulp" / "pids.json").read()
    alive = [n for n, pid in pulp_pids.items() if Path(f"/proc/{pid}").exists()]
    pulp._stop_leftovers()  # its own pids.json, checked against its settings path
    if alive:
        stopped.append(f"Pulp {', '.join(alive)}")
    pg = Postgres(root / "pulp")
    port = pg._running_port()
    if port is not None:
        subprocess.run(
            pg._as_postgres([_pg_bin("pg_ctl"), "-D", str(pg.data_dir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
            timeout=60,
        )
        stopped.append(f"PostgreSQL cluster (port {port})")
    with contextlib.suppress(Exception):
        info = json.loads(pg.info_path.read_text())
        if info.get("mode") == "shared":  # our database on the local server: drop it
            pg.start()
            pg.drop()
            stopped.append(f"database {info.get('name')} dropped")
    shutil.rmtree(root, ignore_errors=True)
    print(f"demo-down: {', '.join(stopped) if stopped else 'nothing was running'}; removed {rel(root)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--down", action="store_true", help="stop leftovers and remove the demo state")
    ap.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    args = ap.parse_args(argv)
    return down() if args.down else up(args.keep)


if __name__ == "__main__":
    sys.exit(main())
