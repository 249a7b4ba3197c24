"""A real Pulp (pulpcore-api, pulpcore-content, pulpcore-worker) under one state directory.

Plain Python (no pytest). ``PulpServer(state_dir).start()`` provides PostgreSQL (see
``postgres.py``), writes settings and a Fernet key, migrates (skipped when this state dir's
database is already migrated for the same code), sets the admin password, starts the three
services on free loopback ports in their own process groups and waits for the status endpoint
to list a worker and a content app. ``stop()`` ends exactly those process groups.

Reusing a state dir makes the second start take seconds instead of ~20 s of migrations.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.harness.ports import free_port
from tests.harness.postgres import Database, Postgres

ADMIN_USER = "admin"
ADMIN_PASSWORD = "password"  # throwaway instance on loopback only
SERVICES = ("api", "content", "worker")


class PulpError(RuntimeError):
    """Pulp could not be started; the message names the logs to read."""


def _code_fingerprint() -> str:
    """Hash of everything that decides the DB schema and access policies.

    pulpcore (re)creates access policies and roles in ``post_migrate``, so a change of the
    plugin's viewsets must re-run migrate even when no migration file changed.
    """
    import pulp_container
    import pulpcore

    import pulp_fedora_mirror

    h = hashlib.sha256()
    h.update(f"{pulpcore.__file__}{pulp_container.__file__}".encode())
    for pkg in (pulpcore, pulp_container):
        h.update(getattr(pkg, "__version__", "").encode())
    app = Path(pulp_fedora_mirror.__file__).parent / "app"
    for f in sorted(app.rglob("*.py")):
        h.update(str(f.relative_to(app)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


class PulpServer:
    """One Pulp instance. Use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        api_workers: int = 2,
        content_workers: int = 1,
        extra_settings: dict[str, Any] | None = None,
        ready_timeout: float = 90.0,
        shared_postgres: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = Path(bin_dir) if bin_dir else Path(sys.executable).parent
        self.api_workers = api_workers
        self.content_workers = content_workers
        self.extra_settings = dict(extra_settings or {})
        self.ready_timeout = ready_timeout
        #: ``shared_postgres=False``: always a throwaway cluster under the state dir, never a
        #: database on the local server (see ``postgres.py``).
        self.postgres = Postgres(self.state_dir, allow_shared=shared_postgres)
        self.settings_path = self.state_dir / "settings.py"
        self.logs_dir = self.state_dir / "logs"
        #: ALLOWED_EXPORT_PATHS entry (with trailing slash): tests create exporters below it.
        self.export_root = self.state_dir / "exports"
        self.media_root = self.state_dir / "media"
        self.api_port: int | None = None
        self.content_port: int | None = None
        self.database: Database | None = None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- URLs and helpers ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<api port>`` (hrefs returned by Pulp are relative to it)."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/pulp/api/v3/"

    @property
    def content_origin(self) -> str:
        return f"http://127.0.0.1:{self.content_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for pulpcore commands of this instance."""
        env = dict(os.environ)
        env["PULP_SETTINGS"] = str(self.settings_path)
        env["XDG_RUNTIME_DIR"] = str(self.state_dir / "run")
        env["HOME"] = str(self.state_dir / "home")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return env

    def session(self, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> requests.Session:
        """A requests session with Basic auth and JSON defaults for this Pulp."""
        s = requests.Session()
        s.auth = (user, password)
        s.headers["Accept"] = "application/json"
        return s

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``pulpcore-manager`` with this instance's settings; raise with output on failure."""
        proc = subprocess.run(
            [str(self.bin_dir / "pulpcore-manager"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.state_dir,
        )
        if proc.returncode != 0:
            raise PulpError(
                f"pulpcore-manager {' '.join(args)} failed (rc {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> PulpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PulpServer:
        """Bring everything up (idempotent: a running instance is returned as is)."""
        if self._procs and all(p.poll() is None for p in self._procs.values()):
            return self
        self._stop_leftovers()
        for d in ("media", "assets", "tmp", "exports", "imports", "logs", "certs", "run", "home"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        (self.state_dir / "run").chmod(0o700)
        self.database = self.postgres.start()
        self.api_port, self.content_port = free_port(), free_port()
        while self.content_port == self.api_port:
            self.content_port = free_port()
        self._write_settings()
        self._migrate()
        try:
            self._spawn()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the process groups this object started, then the cluster it started."""
        for name, proc in list(self._procs.items()):
            # gunicorn: SIGINT is its quick shutdown (SIGTERM waits up to 30 s for keep-alive
            # connections); the worker's SIGTERM handler finishes promptly.
            self._kill_group(proc.pid, proc, signal.SIGTERM if name == "worker" else signal.SIGINT)
            del self._procs[name]
        self._stop_leftovers()  # extra workers a test started and did not stop
        self.postgres.stop()

    # -- steps --------------------------------------------------------------------------------

    def _write_settings(self) -> None:
        key = self.state_dir / "certs" / "database_fields.symmetric.key"
        if not key.exists():
            from cryptography.fernet import Fernet

            key.write_bytes(Fernet.generate_key())
            key.chmod(0o600)
        s = self.state_dir
        assert self.database is not None
        settings: dict[str, Any] = {
            "SECRET_KEY": hashlib.sha256(str(s).encode()).hexdigest(),
            "DATABASES": {"default": self.database.django()},
            "DEPLOY_ROOT": str(s),
            "MEDIA_ROOT": str(s / "media"),
            "STATIC_ROOT": str(s / "assets"),
            "WORKING_DIRECTORY": str(s / "tmp"),
            "FILE_UPLOAD_TEMP_DIR": str(s / "tmp"),
            "STORAGES": {
                "default": {"BACKEND": "pulpcore.app.models.storage.FileSystem"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
            "DB_ENCRYPTION_KEY": str(key),
            "CONTENT_ORIGIN": self.content_origin,
            "ALLOWED_CONTENT_CHECKSUMS": ["sha224", "sha256", "sha384", "sha512"],
            # Trailing slash: the check is a plain prefix match (pitfall 4).
            "ALLOWED_EXPORT_PATHS": [str(self.export_root) + "/"],
            "ALLOWED_IMPORT_PATHS": [str(s / "imports") + "/"],
            "TOKEN_AUTH_DISABLED": True,
            "CACHE_ENABLED": False,
            "ANALYTICS": False,
            # Every Basic-auth request hashes the password: Django's default PBKDF2 (1,000,000
            # iterations) costs ~0.4 s of API CPU per request, which dominated task polling and
            # made each promote/publish take seconds. A throwaway instance needs no strong hash;
            # PBKDF2 stays listed so hashes from earlier runs still verify (and get re-hashed).
            "PASSWORD_HASHERS": [
                "django.contrib.auth.hashers.MD5PasswordHasher",
                "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            ],
        }
        settings.update(self.extra_settings)
        body = "".join(f"{k} = {v!r}\n" for k, v in settings.items())
        self.settings_path.write_text(
            '"""Generated by tests/harness/pulp.py; rewritten on every start."""\n' + body
        )

    def _migrate(self) -> None:
        """Migrate unless this database was migrated for the same code already."""
        assert self.database is not None
        marker = self.state_dir / "migrated.json"
        want = {"database": self.database.name, "code": _code_fingerprint()}
        try:
            have = json.loads(marker.read_text())
        except (OSError, ValueError):
            have = None
        if have == want:
            return
        self.manage("migrate", "--noinput")
        self.manage("reset-admin-password", "--password", ADMIN_PASSWORD)
        marker.write_text(json.dumps(want))

    def _argv(self) -> dict[str, list[str]]:
        b = self.bin_dir
        return {
            "api": [
                str(b / "pulpcore-api"),
                "-b",
                f"127.0.0.1:{self.api_port}",
                "-w",
                str(self.api_workers),
                "--no-control-socket",
                "--access-logfile",
                "-",
                "--timeout",
                "120",
            ],
            "content": [
                str(b / "pulpcore-content"),
                "-b",
                f"127.0.0.1:{self.content_port}",
                "-w",
                str(self.content_workers),
                "--no-control-socket",
            ],
            "worker": [str(b / "pulpcore-worker")],
        }

    def _popen(self, log_name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs_dir / f"{log_name}.log", "ab")
        try:
            return subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=True,
            )
        finally:
            log.close()

    def _spawn(self) -> None:
        argv = self._argv()
        for name in SERVICES:
            self._procs[name] = self._popen(name, argv[name], self.env)
        (self.state_dir / "pids.json").write_text(json.dumps({n: p.pid for n, p in self._procs.items()}))

    def _logs_hint(self) -> str:
        return ", ".join(str(self.logs_dir / f"{n}.log") for n in SERVICES)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise PulpError(
                        f"pulpcore-{name} exited with rc {proc.returncode}; see "
                        f"{self.logs_dir / (name + '.log')}"
                    )
            try:
                r = requests.get(self.api_root + "status/", timeout=5)
                if r.ok:
                    st = r.json()
                    if st.get("online_workers") and st.get("online_content_apps"):
                        return
                    last = (
                        f"workers={len(st.get('online_workers') or [])} "
                        f"content_apps={len(st.get('online_content_apps') or [])}"
                    )
                else:
                    last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.25)
        raise PulpError(
            f"Pulp not ready after {self.ready_timeout:.0f} s ({last}); logs: {self._logs_hint()}"
        )

    # -- extra workers (crash and multi-host tests) -----------------------------------------------

    def stop_service(self, name: str) -> None:
        """Stop one of the three services (e.g. the worker, so a test's own worker gets the task)."""
        proc = self._procs.pop(name, None)
        if proc is not None:
            self._kill_group(proc.pid, proc, signal.SIGTERM if name == "worker" else signal.SIGINT)

    def start_service(self, name: str) -> None:
        """Start a service stopped by :meth:`stop_service` again and wait until Pulp is ready."""
        if name not in self._procs:
            self._procs[name] = self._popen(name, self._argv()[name], self.env)
            self._record_pid(name, self._procs[name].pid)
        self._wait_ready()
        if name == "worker":
            self._wait_worker_online(self._procs[name], name)

    def _record_pid(self, name: str, pid: int) -> None:
        pids_file = self.state_dir / "pids.json"
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            pids = {}
        pids[name] = pid
        pids_file.write_text(json.dumps(pids))

    def spawn_worker(
        self, log_name: str, extra_env: dict[str, str] | None = None, argv: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """An additional ``pulpcore-worker`` (or ``argv``, a launcher of one) in its own process
        group, with ``extra_env``.

        The caller owns it and stops it with ``kill_worker``; it is recorded in ``pids.json``, so
        :meth:`stop` (or the next :meth:`start`) ends it if the caller did not. Returns once the
        status endpoint lists it among the online workers.
        """
        env = self.env
        env.update(extra_env or {})
        proc = self._popen(log_name, argv or self._argv()["worker"], env)
        # Recorded with the services, so a later start() stops it if its owner never did.
        self._record_pid(log_name, proc.pid)
        try:
            self._wait_worker_online(proc, log_name)
        except BaseException:
            self.kill_worker(proc)
            raise
        return proc

    def _wait_worker_online(self, proc: subprocess.Popen[bytes], log_name: str) -> None:
        """Wait until the status lists this very worker process (a killed worker stays listed as
        online for WORKER_TTL, so "some worker online" proves nothing), then a moment more: a
        task dispatched before the worker LISTENs for wake-ups waits until something else wakes
        the workers."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = self.logs_dir / f"{log_name}.log"
                raise PulpError(f"worker exited with rc {proc.returncode}; see {log}")
            try:
                st = requests.get(self.api_root + "status/", timeout=5).json()
                if any(w["name"].startswith(f"{proc.pid}@") for w in st.get("online_workers") or []):
                    time.sleep(1.0)
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.25)
        raise PulpError(f"worker {proc.pid} not online after {self.ready_timeout:.0f} s")

    @staticmethod
    def kill_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal an extra worker's whole process group (the worker and its task child)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    # -- process groups -----------------------------------------------------------------------

    @staticmethod
    def _kill_group(
        pgid: int, proc: subprocess.Popen[bytes] | None = None, sig: int = signal.SIGTERM
    ) -> None:
        """Signal the group (gunicorn masters stop their workers), SIGKILL after 15 s."""
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _stop_leftovers(self) -> None:
        """Stop services an earlier run on this state dir left behind (crash, kill -9 of pytest).

        Only process groups recorded in our pids.json *and* still running with this state dir's
        settings file are touched: never anything another user or test run started.
        """
        pids_file = self.state_dir / "pids.json"
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            return
        marker = f"PULP_SETTINGS={self.settings_path}".encode()
        for pid in pids.values():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ and os.getpgid(pid) == pid:
                self._kill_group(pid)
        pids_file.unlink(missing_ok=True)


def main() -> None:
    """``python -m tests.harness.pulp STATE_DIR``: start Pulp, print URLs, stop on Ctrl-C."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("state_dir")
    args = ap.parse_args()
    with PulpServer(args.state_dir) as pulp:
        print(
            json.dumps(
                {
                    "api": pulp.api_root,
                    "content": pulp.content_origin,
                    "user": ADMIN_USER,
                    "password": ADMIN_PASSWORD,
                    "export_root": str(pulp.export_root),
                }
            ),
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
