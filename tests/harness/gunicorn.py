"""gunicorn running a WSGI app (e.g. ``crane_fedora.wsgi:application``) on a free loopback port.

TLS by default when given certificates: a plain-HTTP gunicorn costs skopeo/podman 10 s per
command (they try a TLS handshake first and gunicorn never rejects it; clients.md §5).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from tests.harness.ports import free_port
from tests.harness.service import LoopbackHTTP, Service
from tests.harness.tls import TLSFiles


class Gunicorn(LoopbackHTTP, Service):
    """``python -m gunicorn <app>`` with ``workers`` workers of ``worker_class``.

    ``env`` is added to the environment (e.g. ``CRANE_CONFIG_PATH``); ``pythonpath`` is passed as
    ``--pythonpath`` (the app need not be installed). Readiness: any HTTP answer on
    ``ready_path`` (gunicorn binds before the workers import the app, so a TCP connect is not
    enough). ``python`` defaults to the running interpreter (the venv's).
    """

    name = "gunicorn"

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        app: str,
        *,
        tls: TLSFiles | None = None,
        env: Mapping[str, str] | None = None,
        workers: int = 2,
        worker_class: str = "sync",
        threads: int = 1,
        port: int | None = None,
        ready_path: str = "/v2/",
        pythonpath: str | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        timeout: int = 60,
    ) -> None:
        super().__init__(state_dir, env=env)
        self.app = app
        self.tls = tls
        self.workers = workers
        self.worker_class = worker_class
        self.threads = threads
        self.port = port or free_port()
        self.ready_path = ready_path
        self.pythonpath = pythonpath
        self.extra_args = list(extra_args)
        self.python = python
        self.timeout = timeout

    def command(self) -> Sequence[str]:
        argv = [
            self.python, "-m", "gunicorn",
            "--bind", self.host,
            "--workers", str(self.workers),
            "--worker-class", self.worker_class,
            "--threads", str(self.threads),
            "--timeout", str(self.timeout),
            "--graceful-timeout", "5",
            "--access-logfile", str(self.state_dir / "access.log"),
            "--error-logfile", "-",
            "--pid", str(self.state_dir / "gunicorn.pid"),
        ]  # fmt: skip
        if self.tls:
            argv += ["--certfile", str(self.tls.cert), "--keyfile", str(self.tls.key)]
        if self.pythonpath:
            argv += ["--pythonpath", self.pythonpath]
        return [*argv, *self.extra_args, self.app]

    def ready(self) -> bool:
        return self.answers("GET", self.ready_path)
