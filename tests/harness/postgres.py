"""A PostgreSQL database for tests, from wherever one can be had.

In order: ``$PULP_TEST_DATABASE_URL`` (used as is), a server that answers on 127.0.0.1:5432
with trust authentication (a uniquely named database is created there), or a throwaway cluster
under the state directory (``initdb``/``pg_ctl`` as user ``postgres`` when run as root, on a free
port). The chosen database name and cluster are kept in the state directory, so a second run
with the same directory reuses the already migrated database instead of paying for migrations.

Plain Python (no pytest): usable from fixtures, scripts and benchmarks alike.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.harness.ports import free_port

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 5432


class PostgresError(RuntimeError):
    """PostgreSQL could not be provided; the message names the log to read."""


@dataclass(frozen=True)
class Database:
    """Connection parameters of one database (the role may create databases)."""

    host: str
    port: int
    user: str
    password: str
    name: str

    def django(self) -> dict[str, object]:
        """The ``DATABASES["default"]`` entry for Django/pulpcore settings."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": str(self.port),
            "CONN_MAX_AGE": 0,
        }


def _connect(host: str, port: int, user: str, password: str = "", dbname: str = "postgres"):
    import psycopg  # the Pulp venv has it; imported lazily so the module imports anywhere

    return psycopg.connect(
        host=host,
        port=port,
        user=user,
        password=password or None,
        dbname=dbname,
        connect_timeout=3,
        autocommit=True,
    )


def _pg_bin(name: str) -> str:
    """Path of a PostgreSQL server binary (Debian keeps them out of PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise PostgresError(
            f"{name} not found (install postgresql) and no server answers on "
            f"{SHARED_HOST}:{SHARED_PORT}; or set PULP_TEST_DATABASE_URL"
        )
    return candidates[0]


class Postgres:
    """Provides one database; ``start()`` returns it, ``stop()`` stops only what this started."""

    def __init__(
        self, state_dir: str | os.PathLike[str], prefix: str = "pulp_fm", *, allow_shared: bool = True
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.prefix = prefix
        #: False: never use the server on 127.0.0.1:5432, always the cluster under the state dir
        #: (``make demo`` keeps all its state in one directory that ``demo-down`` removes).
        self.allow_shared = allow_shared
        self.pg_dir = self.state_dir / "pg"
        self.data_dir = self.pg_dir / "data"
        self.sock_dir = self.pg_dir / "sock"
        self.log_path = self.pg_dir / "postgres.log"
        self.info_path = self.state_dir / "database.json"
        self.database: Database | None = None
        self.mode: str | None = None  # "env", "shared" or "cluster"
        self._started_cluster = False

    # -- public -------------------------------------------------------------------------------

    def start(self) -> Database:
        """Find or create the database. Idempotent."""
        if self.database is not None:
            return self.database
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = os.environ.get("PULP_TEST_DATABASE_URL")
        if url:
            self.mode, self.database = "env", self._from_url(url)
        elif self.allow_shared and self._shared_answers():
            self.mode, self.database = "shared", self._shared_database()
        else:
            self.mode, self.database = "cluster", self._cluster_database()
        return self.database

    def stop(self) -> None:
        """Stop the throwaway cluster if this object started it; databases are kept for reuse."""
        if self._started_cluster:
            subprocess.run(
                self._as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
                timeout=60,
            )
            self._started_cluster = False
        self.database = None

    def drop(self) -> None:
        """Drop the database created on the shared server (explicit clean-up; not done by stop)."""
        if self.mode == "shared" and self.database is not None:
            with _connect(SHARED_HOST, SHARED_PORT, "postgres") as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database.name}" WITH (FORCE)')
            self.info_path.unlink(missing_ok=True)

    # -- the three sources --------------------------------------------------------------------

    @staticmethod
    def _from_url(url: str) -> Database:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
            raise PostgresError(
                f"PULP_TEST_DATABASE_URL must be postgres://user:pw@host:port/db, got {url!r}"
            )
        return Database(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            name=parts.path.strip("/"),
        )

    @staticmethod
    def _shared_answers() -> bool:
        try:
            with socket.create_connection((SHARED_HOST, SHARED_PORT), timeout=1):
                pass
            with _connect(SHARED_HOST, SHARED_PORT, "postgres") as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    def _remembered(self, mode: str) -> dict[str, object] | None:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None
        return info if info.get("mode") == mode else None

    def _remember(self, db: Database, mode: str) -> None:
        self.info_path.write_text(json.dumps({"mode": mode, **asdict(db)}, indent=1))

    def _shared_database(self) -> Database:
        """A database of our own on the shared server: unique name, kept across runs."""
        info = self._remembered("shared")
        name = str(info["name"]) if info else f"{self.prefix}_{secrets.token_hex(6)}"
        with _connect(SHARED_HOST, SHARED_PORT, "postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        db = Database(SHARED_HOST, SHARED_PORT, "postgres", "", name)
        self._remember(db, "shared")
        return db

    def _cluster_database(self) -> Database:
        """A private cluster under the state dir, started on a free port."""
        self._make_traversable()
        for d in (self.pg_dir, self.sock_dir):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(exist_ok=True)
            self._chown(self.data_dir)
            self.data_dir.chmod(0o700)
            self._run(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
            )
        port = self._running_port()
        if port is None:
            port = free_port()
            self.log_path.touch()
            self._chown(self.log_path)
            self._run(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -k {self.sock_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                ],
                "pg_ctl start",
            )
            self._started_cluster = True
        name = "pulp"
        deadline = time.monotonic() + 30
        while True:
            try:
                with _connect("127.0.0.1", port, "postgres") as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                        conn.execute(f'CREATE DATABASE "{name}"')
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(
                        f"cluster on port {port} does not answer: {exc}; see {self.log_path}"
                    ) from exc
                time.sleep(0.2)
        db = Database("127.0.0.1", port, "postgres", "", name)
        self._remember(db, "cluster")
        return db

    # -- helpers ------------------------------------------------------------------------------

    def _running_port(self) -> int | None:
        """Port of a cluster left running on this data dir by an earlier run, if it is alive."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"postgres" not in cmdline:
            return None
        return port

    @staticmethod
    def _is_root() -> bool:
        return os.geteuid() == 0

    def _as_postgres(self, argv: list[str]) -> list[str]:
        """initdb refuses to run as root: drop to the ``postgres`` user when we are root."""
        if not self._is_root():
            return argv
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *argv]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in argv)]

    def _chown(self, path: Path) -> None:
        if self._is_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _make_traversable(self) -> None:
        """The postgres user must reach the data dir: add o+x to ancestors lacking it.

        Only the execute (search) bit is added, never read or write, so directory listings stay
        private; a ``mktemp -d`` directory (0700) is the usual offender.
        """
        if not self._is_root():
            return
        for parent in [self.state_dir, *self.state_dir.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def _run(self, argv: list[str], what: str) -> None:
        proc = subprocess.run(
            self._as_postgres(argv), capture_output=True, text=True, check=False, timeout=120, cwd="/"
        )
        if proc.returncode != 0:
            raise PostgresError(
                f"{what} failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}; log: {self.log_path}"
            )
