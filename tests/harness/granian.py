"""granian (a Rust HTTP server for WSGI apps) running crane_fedora: the fast production option.

Same interface as :class:`tests.harness.gunicorn.Gunicorn` (URLs, readiness, TLS files), so
:class:`tests.harness.crane.CraneStack` can run either. granian answers a TLS handshake on a
plain port with an error at once, and serves TLS itself with the PKCS#8 keys the harness makes.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.harness.gunicorn import Gunicorn


class Granian(Gunicorn):
    """``python -m granian --interface wsgi <app>`` with ``workers`` processes."""

    name = "granian"

    def command(self) -> Sequence[str]:
        argv = [
            self.python, "-m", "granian",
            "--interface", "wsgi",
            "--host", self.host.rsplit(":", 1)[0],
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--blocking-threads", str(max(1, self.threads)),
            "--no-respawn-failed-workers",
        ]  # fmt: skip
        if self.tls:
            argv += ["--ssl-certificate", str(self.tls.cert), "--ssl-keyfile", str(self.tls.key)]
        if self.pythonpath:
            argv += ["--working-dir", self.pythonpath]
        return [*argv, *self.extra_args, self.app]
