"""A RabbitMQ broker for tests: a throwaway node we own, or the system one if it is good enough.

Why a throwaway node by default: the notification tests stop and start the broker to prove the
outbox survives an outage. Doing that to the system broker would disturb every other engineer's
tests, so :class:`ThrowawayRabbitMQ` starts ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly
(``docs``: ``shared/reference/messaging.md`` §3) with its own node name, AMQP port, distribution
port and epmd port, everything under one state directory, and the ``rabbitmq_amqp1_0`` plugin on.

:func:`system_broker` returns the broker at 127.0.0.1:5672 only when it speaks both AMQP 0-9-1 and
AMQP 1.0 (checked with real protocol headers, not by asking ``rabbitmq-plugins``, which needs the
system cookie). It never changes the system broker's plugins.

Run by hand: ``python -m tests.harness.rabbitmq [--state DIR]`` starts a node and prints its URL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.harness.ports import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")

#: AMQP 1.0 SASL protocol header; a broker with the 1.0 plugin answers with the same 8 bytes.
_AMQP10_SASL_HEADER = b"AMQP\x03\x01\x00\x00"
_AMQP091_HEADER = b"AMQP\x00\x00\x09\x01"


@dataclass(frozen=True)
class Broker:
    """Where a test finds a broker."""

    host: str
    port: int
    username: str = "guest"
    password: str = "guest"

    @property
    def amqp_url(self) -> str:
        """AMQP 0-9-1 URL (pika), default vhost."""
        return f"amqp://{self.username}:{self.password}@{self.host}:{self.port}/%2F"

    @property
    def amqp1_url(self) -> str:
        """AMQP 1.0 URL in this project's ``amqp1+amqp://`` scheme (see docs/messages.md)."""
        return f"amqp1+amqp://{self.host}:{self.port}"


def _answers(host: str, port: int, header: bytes, timeout: float = 2.0) -> bytes:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(header)
            s.settimeout(timeout)
            return s.recv(8)
    except OSError:
        return b""


def speaks_amqp091(host: str, port: int) -> bool:
    """True if something on host:port answers an AMQP 0-9-1 protocol header with a Connection.Start."""
    reply = _answers(host, port, _AMQP091_HEADER)
    return len(reply) >= 1 and reply[:1] == b"\x01"  # frame type METHOD


def speaks_amqp10(host: str, port: int) -> bool:
    """True if host:port accepts AMQP 1.0 (RabbitMQ with ``rabbitmq_amqp1_0``).

    Without the plugin RabbitMQ answers any unknown protocol header with its own 0-9-1 header.
    """
    return _answers(host, port, _AMQP10_SASL_HEADER) == _AMQP10_SASL_HEADER


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS broker and one client (see :func:`make_tls_files`)."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    #: The client certificate's CN: the RabbitMQ user that SASL EXTERNAL logs in as.
    client_cn: str


def make_tls_files(directory: str | os.PathLike[str], client_cn: str = "pulp-notifier") -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    for name, cn, ext in (
        ("server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", client_cn, "extendedKeyUsage=clientAuth"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        ssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        ssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.pem"),
        )
    return TlsFiles(
        ca_cert=str(d / "ca.pem"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client.key"),
        client_cn=client_cn,
    )


def system_broker(host: str = "127.0.0.1", port: int = 5672) -> Broker | None:
    """The system broker if it speaks both protocols (and so can serve every non-restart test)."""
    if speaks_amqp091(host, port) and speaks_amqp10(host, port):
        return Broker(host, port)
    return None


class ThrowawayRabbitMQ:
    """A RabbitMQ node owned by the test run: start, stop, start again, destroy.

    State (mnesia, logs, cookie, config) lives in ``state_dir``; durable queues and their messages
    survive :meth:`stop`/:meth:`start`. Only processes this object started are ever signalled.
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, tls: TlsFiles | None = None) -> None:
        self._own_dir = state_dir is None
        #: With ``tls``: an extra TLS listener on ``tls_port`` that, like Fedora's broker, demands a
        #: client certificate and accepts SASL EXTERNAL (user name = the certificate's CN).
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="rmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"rmqtest-{uuid.uuid4().hex[:8]}@localhost"
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd_pid: int | None = None

    @property
    def broker(self) -> Broker:
        """Connection facts for clients."""
        return Broker("127.0.0.1", self.port)

    @staticmethod
    def available() -> bool:
        """True if the Debian ``rabbitmq-server`` package is installed (what this class runs)."""
        return (RABBITMQ_BIN / "rabbitmq-server").exists()

    def _env(self) -> dict[str, str]:
        t = self.state_dir
        env = dict(os.environ)
        env.update(
            HOME=str(t),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_MNESIA_BASE=str(t / "mnesia"),
            RABBITMQ_LOG_BASE=str(t / "log"),
            RABBITMQ_CONFIG_FILE=str(t / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(t / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(t / "rmq.pid"),
            RABBITMQ_CONF_ENV_FILE=str(t / "rabbitmq-env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(t / "advanced.config"),
        )
        return env

    def _write_config(self) -> None:
        t = self.state_dir
        (t / "mnesia").mkdir(parents=True, exist_ok=True)
        (t / "log").mkdir(parents=True, exist_ok=True)
        plugins = "rabbitmq_amqp1_0" + (",rabbitmq_auth_mechanism_ssl" if self.tls else "")
        (t / "enabled_plugins").write_text(f"[{plugins}].\n")
        (t / "rabbitmq-env.conf").write_text("")
        conf = f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        if self.tls:
            conf += (
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {self.tls.ca_cert}\n"
                f"ssl_options.certfile = {self.tls.server_cert}\n"
                f"ssl_options.keyfile = {self.tls.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
                "auth_mechanisms.1 = EXTERNAL\nauth_mechanisms.2 = PLAIN\nauth_mechanisms.3 = AMQPLAIN\n"
                "ssl_cert_login_from = common_name\n"
            )
        (t / "rabbitmq.conf").write_text(conf)

    @property
    def running(self) -> bool:
        """True while our server process is alive."""
        return self._server is not None and self._server.poll() is None

    def start(self, timeout: float = 60.0) -> Broker:
        """Start (or restart) the node and wait until both protocols answer on its port."""
        if self.running:
            return self.broker
        self._write_config()
        out = open(self.state_dir / "server.out", "ab")
        self._server = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: we can signal exactly what we started
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited early; see {self.state_dir / 'server.out'}")
            tls_up = self.tls_port is None or _listening("127.0.0.1", self.tls_port)
            if speaks_amqp091("127.0.0.1", self.port) and speaks_amqp10("127.0.0.1", self.port) and tls_up:
                self._remember_epmd()
                return self.broker
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"RabbitMQ did not listen on {self.port} within {timeout}s")

    def _remember_epmd(self) -> None:
        """Find the epmd our node started (it listens on our own ``ERL_EPMD_PORT``)."""
        if self._epmd_pid is not None:
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["ss", "-Hltnp", f"sport = :{self.epmd_port}"], capture_output=True, text=True, timeout=5
            ).stdout
            for part in out.split("pid=")[1:]:
                self._epmd_pid = int(part.split(",", 1)[0])
                break

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl ARGS`` against this node (e.g. ``add_user``); return its stdout."""
        r = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def admit_client_certificate(self) -> None:
        """Make the TLS client certificate's CN a user with no password and full permissions on
        ``/``, so that it logs in by SASL EXTERNAL only, as on Fedora's broker."""
        if self.tls is None:
            raise RuntimeError("admit_client_certificate needs a node started with tls")
        cn = self.tls.client_cn
        self.ctl("add_user", cn, "unused-password-external-auth")
        self.ctl("clear_password", cn)
        self.ctl("set_permissions", "-p", "/", cn, ".*", ".*", ".*")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (``rabbitmqctl stop``), waiting until its port refuses connections."""
        if self._server is None:
            return
        if self._server.poll() is None:
            subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, "stop"],
                env=self._env(),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            try:
                self._server.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self._server.pid, signal.SIGKILL)  # our own process group only
                self._server.wait(timeout=10)
        self._server = None

    def destroy(self) -> None:
        """Stop the node, stop the epmd it started, and remove the state directory if we made it."""
        self.stop()
        if self._epmd_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._epmd_pid, signal.SIGTERM)
            self._epmd_pid = None
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> ThrowawayRabbitMQ:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def main(argv: list[str] | None = None) -> int:
    """Start a throwaway node and keep it running until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", help="state directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    node = ThrowawayRabbitMQ(args.state)
    t0 = time.monotonic()
    node.start()
    print(f"RabbitMQ up in {time.monotonic() - t0:.1f}s: {node.broker.amqp_url}  (AMQP 1.0 on the same port)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
