"""Instant reload from ``export.complete`` messages: real RabbitMQ, real gunicorn, real exporter.

Every crane here polls only once an hour (``data_dir_polling_interval = 3600``), so a new tag that
shows up within seconds can only have come through the message listener; the same change without
a message is shown *not* to appear.
"""

from __future__ import annotations

import http.client
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask

from crane_fedora.app import create_app
from crane_fedora.config import parse_config
from crane_fedora.metadata.listener import MAX_BODY
from pulp_fedora_mirror.notify import Amqp091Sender, NotifyConfig, build_export_complete
from pulp_fedora_mirror.notify.message import TOPIC
from tests.harness.gunicorn import Gunicorn
from tests.harness.ports import LOOPBACK
from tests.harness.rabbitmq import ThrowawayRabbitMQ, TlsFiles, make_tls_files
from tests.harness.service import wait_for
from tests.unit.ocibuild import standard_layout

from .builder import Native

pytestmark = [pytest.mark.amqp, pytest.mark.services, pytest.mark.timeout(300)]

MASTER = "https://dl.example.org/pub/containers/"
CLI = (sys.executable, "-c", "import sys; from pulp_fedora_mirror.cli import main; sys.exit(main())")
#: How fast a message must make a change visible (the acceptance bound; typically ~10 ms).
INSTANT = 5.0


@pytest.fixture(scope="module")
def rabbit() -> Iterator[ThrowawayRabbitMQ]:
    """A broker of our own (never the system one): nothing here may disturb other test runs."""
    assert ThrowawayRabbitMQ.available(), "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
    with ThrowawayRabbitMQ() as node:  # destroyed (stopped, state removed) on exit
        yield node


@pytest.fixture
def broker(rabbit: ThrowawayRabbitMQ) -> ThrowawayRabbitMQ:
    rabbit.start()  # no-op when running
    return rabbit


def small(name: str, tag: str = "x", seed: str = "1") -> Native:
    n = Native(name)
    n.tag(tag, n.image(seed))
    return n


def status(server: Gunicorn, path: str) -> int:
    """GET on a fresh connection (so successive calls spread over the worker processes)."""
    conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def statuses(server: Gunicorn, path: str, n: int = 12) -> set[int]:
    return {status(server, path) for _ in range(n)}


def log_count(server: Gunicorn, text: str) -> int:
    return server.log_path.read_text(errors="replace").count(text)


def publish(url: str, summary: dict, spool: Path) -> None:
    """The exporter's own message, sent the way the Pulp worker sends it (confirmed by the broker)."""
    sender = Amqp091Sender(NotifyConfig(url=url, spool_dir=str(spool)))
    try:
        sender.send(build_export_complete(summary, export_id=f"test-{uuid.uuid4()}", source="test"))
    finally:
        sender.close()


def publish_raw(
    url: str, body: bytes, routing_key: str = f"org.fedoraproject.dev.{TOPIC}", mandatory: bool = False
) -> None:
    """Any bytes on the export topic, as a broken or hostile publisher could send them.

    ``mandatory``: the broker returns a message no queue is bound for (pika's UnroutableError).
    """
    import pika  # here, not at module level: collecting tests/crane must not need pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        props = pika.BasicProperties(message_id=str(uuid.uuid4()))
        ch.basic_publish("amq.topic", routing_key, body, props, mandatory=mandatory)
    finally:
        conn.close()


def unroutable_error() -> type[Exception]:
    import pika

    return pika.exceptions.UnroutableError


def warnings_count(caplog: pytest.LogCaptureFixture, start: str) -> int:
    """Log lines at WARNING or above that start with ``start`` (DEBUG retries are not counted)."""
    return sum(r.levelno >= logging.WARNING and r.getMessage().startswith(start) for r in caplog.records)


def debug_count(caplog: pytest.LogCaptureFixture, start: str) -> int:
    return sum(r.levelno == logging.DEBUG and r.getMessage().startswith(start) for r in caplog.records)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` held (raises TimeoutError after ``timeout``)."""
    started = time.monotonic()
    wait_for(predicate, timeout, what)
    return time.monotonic() - started


@contextmanager
def crane(
    tmp_path: Path,
    data_dir: Path,
    amqp_url: str,
    *,
    workers: int = 2,
    extra: str = "",
    preload: bool = False,
    debug: bool = False,
) -> Iterator[Gunicorn]:
    """crane_fedora under gunicorn, polling hourly, listening on ``amqp_url``.

    Returns once every worker process has served a request, i.e. started its listener thread
    (they start lazily), and the listeners have logged that they are connected — unless the
    broker is down, in which case the caller waits for that itself.
    """
    conf = tmp_path / "crane.conf"
    conf.write_text(
        f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 3600\n"
        f"[notifications]\namqp_url = {amqp_url}\nreconnect_max_delay = 2\n{extra}"
    )
    server = Gunicorn(
        tmp_path / "gunicorn",
        "crane_fedora.wsgi:application",
        # debug: crane_fedora logs at DEBUG too (e.g. each failed reconnect attempt)
        env={"CRANE_CONFIG_PATH": str(conf), **({"CRANE_DEBUG": "true"} if debug else {})},
        workers=workers,
        extra_args=["--preload"] if preload else [],
    )
    with server:
        yield server


def wait_listening(server: Gunicorn, workers: int, before: int = 0, timeout: float = 60) -> None:
    """Hit the server until ``workers`` more "listening" lines than ``before`` are logged."""
    wait_for(
        lambda: (
            status(server, "/v2/") == 200
            and log_count(server, "listening for export messages") >= before + workers
        ),
        timeout,
        f"{workers} listener(s) connected; log {server.log_path}",
    )


def test_export_message_reloads_every_worker_at_once(tmp_path, broker):
    """The real exporter writes a repository; its real message makes both workers serve it now."""
    data_dir = tmp_path / "metadata"
    small("other/repo").write(data_dir)
    layout = str(tmp_path / "layout")
    standard_layout(layout)
    with crane(tmp_path, data_dir, broker.broker.amqp_url, workers=2) as server:
        wait_listening(server, 2)
        assert statuses(server, "/v2/fedora/busybox/manifests/latest") == {404}

        proc = subprocess.run(
            [
                *CLI,
                *("export", layout, "--name", "fedora/busybox", "--root", str(tmp_path / "root")),
                *("--metadata-dir", str(data_dir), "--master-url", MASTER, "--json", "-q"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        summary = json.loads(proc.stdout)
        assert summary["metadata_changed"] and "latest" in summary["tags"]
        # No message yet, and the next poll is an hour away: nothing can reload the new file, so
        # no waiting is needed; the 200 below comes from the message alone.
        assert statuses(server, "/v2/fedora/busybox/manifests/latest") == {404}

        publish(broker.broker.amqp_url, summary, tmp_path / "spool")
        took = wait_until(
            lambda: statuses(server, "/v2/fedora/busybox/manifests/latest") == {200},
            INSTANT,
            "the exported tag served by every worker",
        )
        # each worker got its own copy of the message (one queue per process) and reloaded
        rescans = "export message for fedora/busybox: rescanning"
        wait_for(lambda: log_count(server, rescans) == 2, 5, "2 rescans")
        for tag in summary["tags"]:
            assert statuses(server, f"/v2/fedora/busybox/manifests/{tag}", 4) == {200}
        print(f"new repository served by every worker {took:.2f} s after the message")


def test_message_for_a_changed_tag_and_unrelated_topics(tmp_path, broker):
    """A new tag in an existing file; a message on another topic does not trigger anything."""
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools", tag="x")
    repo.write(data_dir)
    with crane(tmp_path, data_dir, broker.broker.amqp_url, workers=1) as server:
        wait_listening(server, 1)
        repo.tag("y", repo.image("2")).write(data_dir)
        # The event to wait for: the broker returns the message as routed to no queue (mandatory
        # publish), so no listener can ever get it.
        with pytest.raises(unroutable_error()):
            publish_raw(
                broker.broker.amqp_url,
                b'{"name": "fedora/tools"}',
                "org.fedoraproject.dev.other.topic",
                mandatory=True,
            )
        assert status(server, "/v2/fedora/tools/manifests/y") == 404
        assert log_count(server, "export message for") == 0

        publish(broker.broker.amqp_url, {"name": "fedora/tools", "tags": repo.tags}, tmp_path / "spool")
        wait_until(lambda: status(server, "/v2/fedora/tools/manifests/y") == 200, INSTANT, "tag y")
        assert status(server, "/v2/fedora/tools/manifests/x") == 200


def test_malformed_messages_are_logged_and_ignored(tmp_path, broker):
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools", tag="x")
    repo.write(data_dir)
    bad = [
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"fedora/tools"',
        b'{"nom": "fedora/tools"}',
        b'{"name": 42}',
        b'{"name": "../../etc/passwd"}',
        b'{"name": "Fedora/UPPER"}',
        b'{"a": ' * 100_000,  # deeply nested: json raises RecursionError, which must not escape
        b" " * (MAX_BODY + 1),  # too big to be one: not even parsed
    ]
    with crane(tmp_path, data_dir, broker.broker.amqp_url, workers=1) as server:
        wait_listening(server, 1)
        repo.tag("y", repo.image("2")).write(data_dir)
        for body in bad:
            publish_raw(broker.broker.amqp_url, body)
        wait_for(lambda: log_count(server, "notification ignored") == len(bad), 5, "every bad message logged")
        assert status(server, "/v2/fedora/tools/manifests/y") == 404  # hints that failed validation: no scan
        assert log_count(server, "export message for") == 0
        # the listener is still alive and still on the same connection
        publish(broker.broker.amqp_url, {"name": "fedora/tools"}, tmp_path / "spool")
        wait_until(lambda: status(server, "/v2/fedora/tools/manifests/y") == 200, INSTANT, "tag y after junk")
        assert log_count(server, "listening for export messages") == 1
        assert log_count(server, "Traceback") == 0


def test_broker_down_at_start_then_up_then_restarted(tmp_path):
    """No broker at start: crane serves; once it is up the listener connects and catches up."""
    assert ThrowawayRabbitMQ.available(), "rabbitmq-server is not installed"
    node = ThrowawayRabbitMQ()  # ports chosen, not started yet
    url = node.broker.amqp_url
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools", tag="x")
    repo.write(data_dir)
    try:
        with crane(tmp_path, data_dir, url, workers=1, debug=True) as server:
            warning = "listener: cannot listen on"  # the WARNING line; retries log "...: still cannot..."
            assert status(server, "/v2/fedora/tools/manifests/x") == 200
            wait_for(lambda: log_count(server, warning) == 1, 10, "the failure logged")
            # written while nobody listens: the message (if any) is lost, the reconnect scan finds it
            repo.tag("while-down", repo.image("2")).write(data_dir)
            # the event to wait for: several more reconnect attempts failed (each at DEBUG) ...
            wait_for(lambda: log_count(server, "still cannot listen on") >= 2, 30, "two more attempts")
            assert log_count(server, warning) == 1  # ... and the warning was logged once, not per attempt
            assert status(server, "/v2/fedora/tools/manifests/x") == 200
            assert status(server, "/v2/fedora/tools/manifests/while-down") == 404

            node.start()
            wait_listening(server, 1, timeout=30)
            # "listening" is logged just before the catch-up reload, not after it: wait for that.
            caught_up = "metadata reloaded (listener connected)"
            wait_for(lambda: log_count(server, caught_up) >= 1, 10, "the catch-up reload")
            assert log_count(server, caught_up) == 1
            assert status(server, "/v2/fedora/tools/manifests/while-down") == 200
            repo.tag("after-up", repo.image("3")).write(data_dir)
            publish(url, {"name": "fedora/tools"}, tmp_path / "spool")
            wait_until(lambda: status(server, "/v2/fedora/tools/manifests/after-up") == 200, INSTANT, "up")

            # the broker goes away under a connected listener and comes back
            node.stop()
            wait_for(lambda: log_count(server, "lost the connection to") == 1, 15, "the loss logged")
            assert status(server, "/v2/fedora/tools/manifests/after-up") == 200
            node.start()
            wait_listening(server, 1, before=1, timeout=30)
            repo.tag("after-restart", repo.image("4")).write(data_dir)
            publish(url, {"name": "fedora/tools"}, tmp_path / "spool")
            wait_until(
                lambda: status(server, "/v2/fedora/tools/manifests/after-restart") == 200,
                INSTANT,
                "after-restart",
            )
            assert log_count(server, "lost the connection to") == 1
            assert log_count(server, "Traceback") == 0
    finally:
        node.destroy()


def test_named_queue_per_process_with_preload(tmp_path, broker):
    """``queue`` with ``{pid}``: one named queue per worker, each gets every message.

    Under ``--preload`` the app (and its Listener object) is created in the master and forked:
    nothing may have connected before the fork, and each worker starts its own thread.
    """
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools", tag="x")
    repo.write(data_dir)
    prefix = f"crane-test-{uuid.uuid4().hex[:8]}"
    extra = f"queue = {prefix}-{{host}}-{{pid}}\n"
    with crane(tmp_path, data_dir, broker.broker.amqp_url, workers=2, extra=extra, preload=True) as server:
        wait_listening(server, 2)
        queues = [q for q in broker.ctl("list_queues", "-q", "name").split() if q.startswith(prefix)]
        assert len(queues) == 2, queues
        repo.tag("y", repo.image("2")).write(data_dir)
        publish(broker.broker.amqp_url, {"name": "fedora/tools"}, tmp_path / "spool")
        wait_until(
            lambda: statuses(server, "/v2/fedora/tools/manifests/y") == {200}, INSTANT, "y on both workers"
        )
    # exclusive, auto-delete: gone with the workers' connections
    wait_for(
        lambda: not [q for q in broker.ctl("list_queues", "-q", "name").split() if q.startswith(prefix)],
        15,
        "queues deleted",
    )


# -- in-process: the listener thread itself -------------------------------------------------------


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "crane-metadata-listener" and t.is_alive()]


@contextmanager
def app_on(data_dir: Path, notifications: str) -> Iterator[Flask]:
    """An in-process app (polling hourly) with ``[notifications]`` lines; stopped afterwards."""
    app = create_app(
        parse_config(
            f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 3600\n"
            f"[notifications]\nreconnect_max_delay = 1\n{notifications}"
        )
    )
    store = app.extensions["crane_fedora"].store
    try:
        yield app
    finally:
        store.stop()
        if store.listener is not None:
            store.listener.stop(wait=10)


def test_missing_exchange_is_retried_and_stop_ends_the_thread(tmp_path, broker, caplog):
    """A broker-side refusal (no such exchange) is one log line and a retry loop, not a crash."""
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools")
    repo.write(data_dir)
    exchange = f"crane-test-{uuid.uuid4().hex[:8]}"
    url = broker.broker.amqp_url
    caplog.set_level(logging.DEBUG, logger="crane_fedora")
    with app_on(data_dir, f"amqp_url = {url}\nexchange = {exchange}\n") as app:
        client = app.test_client()
        assert not listener_threads()  # never started at create_app/import time
        assert client.get("/v2/fedora/tools/manifests/x").status_code == 200
        assert len(listener_threads()) == 1  # the first request started it
        wait_for(lambda: "NOT_FOUND" in caplog.text, 10, "the refusal logged")
        # The event to wait for: two more attempts failed (each logs at DEBUG only) ...
        wait_for(lambda: debug_count(caplog, "still cannot listen on") >= 2, 30, "two retries")
        assert warnings_count(caplog, "cannot listen on") == 1  # ... and the warning is still one line
        assert "guest:***@" in caplog.text and ":guest@" not in caplog.text  # password never logged

        import pika

        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            conn.channel().exchange_declare(exchange, "topic", auto_delete=True)
            wait_for(lambda: "listening for export messages" in caplog.text, 10, "connected")
            repo.tag("y", repo.image("2")).write(data_dir)
            props = pika.BasicProperties(content_type="application/json")
            conn.channel().basic_publish(
                exchange, f"org.fedoraproject.prod.{TOPIC}", b'{"name": "x/y"}', props
            )
            wait_for(lambda: "export message for x/y" in caplog.text, INSTANT, "the hint")
            # the hint named another repository: still only a hint, the scan finds the real change
            assert client.get("/v2/fedora/tools/manifests/y").status_code == 200
        finally:
            conn.close()
        app.extensions["crane_fedora"].store.listener.stop(wait=10)
        assert not listener_threads()
        assert "listener for" in caplog.text and "stopped" in caplog.text


def test_same_named_queue_twice_is_refused_and_logged_once(tmp_path, broker, caplog):
    """Two listeners on one exclusive queue name: the second is refused (and retries quietly)."""
    data_dir = tmp_path / "metadata"
    small("fedora/tools").write(data_dir)
    name = f"crane-test-{uuid.uuid4().hex[:8]}"  # no {pid}: both listeners (one process) collide
    caplog.set_level(logging.DEBUG, logger="crane_fedora")
    conf = f"amqp_url = {broker.broker.amqp_url}\nqueue = {name}\n"
    with app_on(data_dir, conf) as first, app_on(data_dir, conf) as second:
        first.test_client().get("/v2/")
        wait_for(lambda: "listening for export messages" in caplog.text, 10, "first listener")
        second.test_client().get("/v2/")
        wait_for(lambda: "RESOURCE_LOCKED" in caplog.text, 10, "the refusal")
        wait_for(lambda: debug_count(caplog, "still cannot listen on") >= 2, 30, "two retries")
        assert warnings_count(caplog, "cannot listen on") == 1
        assert caplog.text.count("listening for export messages") == 1
        assert second.test_client().get("/v2/fedora/tools/manifests/x").status_code == 200


@pytest.fixture(scope="module")
def tls_rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThrowawayRabbitMQ, TlsFiles]]:
    """A broker that, like Fedora's, demands a client certificate and logs it in by its CN."""
    tls = make_tls_files(tmp_path_factory.mktemp("rabbit-tls"), client_cn="crane-listener")
    node = ThrowawayRabbitMQ(tls=tls)
    node.start()
    try:
        node.admit_client_certificate()
        yield node, tls
    finally:
        node.destroy()


def test_tls_client_certificate_and_external_auth(tmp_path, tls_rabbit, caplog):
    node, tls = tls_rabbit
    data_dir = tmp_path / "metadata"
    repo = small("fedora/tools")
    repo.write(data_dir)
    caplog.set_level(logging.INFO, logger="crane_fedora")
    url = f"amqps://127.0.0.1:{node.tls_port}/%2F"
    conf = f"amqp_url = {url}\nca_cert = {tls.ca_cert}\n"
    conf += f"certfile = {tls.client_cert}\nkeyfile = {tls.client_key}\n"
    with app_on(data_dir, conf) as app:
        client = app.test_client()
        client.get("/v2/")
        wait_for(lambda: "listening for export messages" in caplog.text, 15, f"TLS connect: {caplog.text}")
        assert tls.client_cn in node.ctl("list_connections", "-q", "user")  # SASL EXTERNAL by the CN
        repo.tag("y", repo.image("2")).write(data_dir)
        publish(node.broker.amqp_url, {"name": "fedora/tools"}, tmp_path / "spool")  # plain port, same broker
        wait_for(lambda: client.get("/v2/fedora/tools/manifests/y").status_code == 200, INSTANT, "tag y")
