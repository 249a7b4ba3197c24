"""Base class for a daemon the harness runs: own process group, log file, readiness wait.

Why process groups: gunicorn forks workers, dockerd and containerd spawn helpers; killing only the
parent would leak children that hold ports and files. Each service is started in a new session
and stopped with a signal to its whole group, never by name (other people's daemons run on the
same machine). An ``atexit`` hook stops anything still running if a script dies half-way.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.harness.ports import LOOPBACK, group_listens_on
from tests.harness.tls import TLSFiles

#: Started and not yet stopped; strong references, so a forgotten service is still stopped at exit.
_RUNNING: set[Service] = set()


class ServiceError(RuntimeError):
    """A service failed to start or become ready; the message carries its log tail."""


def log_tail(path: str | os.PathLike[str], lines: int = 40) -> str:
    """Last ``lines`` lines of a log file (or a note that it is missing)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


def short_dir(preferred: Path, limit: int, prefix: str) -> Path:
    """``preferred`` if its path is short enough, else a fresh short directory under /tmp.

    Unix socket paths are limited to 107 bytes and podman's ``--runroot`` to 50 characters;
    pytest tmp dirs easily exceed both.
    """
    if len(str(preferred)) <= limit:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class Service:
    """One daemon. Subclasses implement :meth:`command` and :meth:`ready`.

    ``state_dir`` holds config, data and ``<name>.log``. ``start()`` waits for :meth:`ready` up to
    ``start_timeout`` seconds and raises :class:`ServiceError` with the log tail if the process
    exits or never gets ready.
    """

    name = "service"
    start_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, state_dir: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    # -- to implement ---------------------------------------------------------------------
    def prepare(self) -> None:
        """Write config files (called by :meth:`start` before the process runs)."""

    def command(self) -> Sequence[str]:
        """argv of the daemon (foreground)."""
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the daemon serves requests."""
        raise NotImplementedError

    def cwd(self) -> str | None:
        """Working directory of the daemon (default: the state dir)."""
        return str(self.state_dir)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        """The daemon's combined stdout/stderr."""
        return self.state_dir / f"{self.name}.log"

    def start(self) -> Self:
        """Start the daemon and wait until it is ready."""
        if self.proc is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        env = {**os.environ, **self.env}
        argv = list(self.command())
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== harness: starting {' '.join(argv)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd(),
                    env=env,
                    start_new_session=True,
                )
            except OSError as e:
                raise ServiceError(f"{self.name}: cannot run {argv[0]}: {e}") from e
        _RUNNING.add(self)
        self.wait_ready(self.start_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll :meth:`ready`; raise with the log tail on exit or timeout (and stop the daemon)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise ServiceError(
                    f"{self.name} exited with status {rc} during startup; log {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            with contextlib.suppress(Exception):
                if self.ready() and self._owns_port():
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"{self.name} not ready after {timeout:.0f}s; log {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _owns_port(self) -> bool:
        """For services with a ``port``: the listener must be ours, not a squatter's."""
        port = getattr(self, "port", None)
        if port is None or self.proc is None:
            return True
        return group_listens_on(self.proc.pid, port)

    @property
    def pid(self) -> int | None:
        """PID of the daemon (its process group id too), or None when stopped."""
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        """True while the daemon process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the daemon's process group, SIGKILL after ``stop_timeout``; idempotent."""
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children that left the group are not ours to chase; make sure the group is gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.after_stop()

    def after_stop(self) -> None:
        """Clean-up after the process is gone (e.g. unmounts); default nothing."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} state_dir={self.state_dir}>"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; raise ``TimeoutError(what)`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@atexit.register
def _stop_all() -> None:
    """Stop services a crashing script left running (only ours: tracked instances)."""
    for svc in list(_RUNNING):
        with contextlib.suppress(Exception):
            svc.stop()


class LoopbackHTTP:
    """Mixin for a service listening on ``127.0.0.1:<port>``, with TLS when ``tls`` is set.

    Subclasses set ``port`` and ``tls`` in their constructor; ``url`` has no trailing slash
    (override it to add a path, as nginx does for its URL prefix).
    """

    port: int
    tls: TLSFiles | None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (also the prefix of image references)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"{self.scheme}://{self.host}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A connection to the service; with TLS, its certificate checked against the harness CA."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=str(self.tls.ca_cert))
            return http.client.HTTPSConnection(LOOPBACK, self.port, context=ctx, timeout=timeout)
        return http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)

    def answers(self, method: str, path: str) -> bool:
        """True once the service answers ``METHOD path`` at all (any status): a readiness probe."""
        conn = self.connection(timeout=2)
        try:
            conn.request(method, path)
            conn.getresponse().read()
            return True
        finally:
            conn.close()
