"""A throw-away CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI.

Why TLS at all in tests: skopeo and podman with ``--tls-verify=false`` try https first and wait
10 s for a handshake that a plain-HTTP gunicorn never answers (clients.md §5). Serving TLS avoids
that and lets tests verify against the CA instead of disabling checks. The openssl CLI is used
because the ``cryptography`` package is not a test dependency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class TLSError(RuntimeError):
    """openssl failed."""


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise TLSError(f"openssl {' '.join(args[:2])} failed: {res.stderr.strip()}")


@dataclass(frozen=True)
class TLSFiles:
    """Paths of a CA certificate and a server certificate/key signed by it.

    The server certificate is valid for ``IP:127.0.0.1``, ``IP:::1`` and ``DNS:localhost``.
    """

    dir: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: str | os.PathLike[str], days: int = 30) -> TLSFiles:
        """Create (or reuse, if all files already exist) the CA and server cert in ``directory``."""
        d = Path(directory).resolve()
        d.mkdir(parents=True, exist_ok=True)
        files = cls(d, d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key")
        if all(p.exists() for p in (files.ca_cert, files.ca_key, files.cert, files.key)):
            return files
        (d / "server.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
        )
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", str(days),
            "-subj", "/CN=fedora-mirror test CA", "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", str(days), "-sha256", "-extfile", "server.ext", "-out", "server.crt",
            cwd=d,
        )  # fmt: skip
        for p in (files.key, files.ca_key):
            p.chmod(0o600)
        return files

    def cert_dir(self, host: str | None = None) -> Path:
        """A directory holding only ``ca.crt``, for ``skopeo --cert-dir`` / ``podman --cert-dir``.

        containers/image treats every ``*.crt`` in such a directory as a trusted CA. With ``host``
        (``127.0.0.1:PORT``) returns ``<dir>/certs.d/<host>`` (docker/containerd certs.d layout).
        """
        base = self.dir / "certs.d"
        target = base / host if host else self.dir / "trust"
        target.mkdir(parents=True, exist_ok=True)
        if not (target / "ca.crt").exists():
            shutil.copyfile(self.ca_cert, target / "ca.crt")
        return target

    def hosts_dir(self, host: str) -> Path:
        """containerd ``--hosts-dir`` trusting this CA for ``https://<host>``.

        Layout ``<dir>/hosts/<host>/hosts.toml`` (containerd 1.6 ``config_path`` format).
        """
        d = self.dir / "hosts" / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "https://{host}"\n\n[host."https://{host}"]\n'
            f'  capabilities = ["pull", "resolve"]\n  ca = "{self.ca_cert}"\n'
        )
        return self.dir / "hosts"
