"""Notifications against a real RabbitMQ 3.10 (a throwaway node with the AMQP 1.0 plugin).

Consumers are real pika consumers bound to ``amq.topic``, which is how fedora-messaging consumers
receive messages. The outage test really stops and restarts the broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pulp_fedora_mirror.notify import (
    SCHEMA,
    NotifyConfig,
    Outbox,
    build_export_complete,
    flush,
    make_sender,
    notify_export_complete,
)
from tests.harness.ports import free_port

from .consumer import TopicConsumer

pytestmark = pytest.mark.amqp

#: The real ``fedora-mirror`` entry point, run as a child process like an admin would.
CLI = [sys.executable, "-c", "import sys; from pulp_fedora_mirror.cli import main; sys.exit(main())"]

SUMMARY = {
    "name": "fedora/busybox",
    "tags": {"latest": "sha256:" + "a" * 64},
    "manifests": 2,
    "blobs": 3,
    "blobs_linked": 3,
    "bytes_written": 4096,
    "metadata_path": "/srv/crane/metadata/fedora/busybox.json",
}


def _prefix() -> str:
    """A unique topic prefix per test, so concurrent tests never see each other's messages."""
    return f"org.fedoraproject.test{uuid.uuid4().hex[:8]}"


def _topic(prefix: str) -> str:
    return f"{prefix}.pulp.fedora_mirror.export.complete"


def _notify_and_receive(
    broker: Any, tmp_path: Path, export_id: str, source: str, url: str, **settings: Any
) -> tuple[str, Any]:
    """Send one export-complete notification of ``SUMMARY`` to ``url`` under a fresh topic prefix
    (spool in ``tmp_path``; ``settings``: more NotifyConfig fields) and return (prefix, the one
    message a consumer bound to ``amq.topic`` on ``broker`` received)."""
    prefix = _prefix()
    consumer = TopicConsumer(broker.amqp_url, f"{prefix}.#")
    try:
        cfg = NotifyConfig(url=url, topic_prefix=prefix, spool_dir=str(tmp_path), **settings)
        notify_export_complete(SUMMARY, export_id=export_id, source=source, config=cfg)
        (got,) = consumer.drain(expect=1)
    finally:
        consumer.close()
    return prefix, got


def _client_tls(rabbit: Any) -> dict[str, Any]:
    """NotifyConfig's TLS fields for the node's client certificate (SASL EXTERNAL by its CN)."""
    tls = rabbit.tls
    return {"ca_cert": tls.ca_cert, "certfile": tls.client_cert, "keyfile": tls.client_key}


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_amqp091_sender_wire_format_is_fedora_messaging(broker, tmp_path) -> None:
    prefix, got = _notify_and_receive(broker, tmp_path, "/pulp/api/v3/exports/42/", "/rv/7/", broker.amqp_url)
    assert Outbox(tmp_path).pending() == []
    assert got.exchange == "amq.topic"
    assert got.routing_key == _topic(prefix)
    p = got.properties
    assert p.content_type == "application/json"
    assert p.content_encoding == "utf-8"
    assert p.delivery_mode == 2
    assert str(uuid.UUID(p.message_id, version=4)) == p.message_id
    assert (p.priority, p.timestamp, p.type, p.app_id) == (None, None, None, None)
    headers = dict(p.headers)
    sent_at = headers.pop("sent-at")
    assert time.strptime(sent_at, "%Y-%m-%dT%H:%M:%S+00:00")
    assert headers == {
        "fedora_messaging_schema": SCHEMA,
        "fedora_messaging_schema_package": "pulp-fedora-mirror",
        "fedora_messaging_severity": 20,
        "fedora_messaging_container_fedora/busybox": True,
        "priority": 0,
    }
    body = json.loads(got.body.decode("utf-8"))
    assert body["export_id"] == "/pulp/api/v3/exports/42/"
    assert body["name"] == "fedora/busybox"
    assert body["tags"] == SUMMARY["tags"]
    assert body["repository_version"] == "/rv/7/"


def test_amqp10_sender_message_arrives_json_decodable(broker, tmp_path) -> None:
    prefix, got = _notify_and_receive(broker, tmp_path, "e-amqp10", "/rv/8/", broker.amqp1_url)
    assert Outbox(tmp_path).pending() == []
    assert got.routing_key == _topic(prefix)
    p = got.properties
    assert p.content_type == "application/json"
    assert p.delivery_mode == 2  # durable=True
    assert str(uuid.UUID(p.message_id, version=4)) == p.message_id
    body = json.loads(got.body)  # one data section: the raw JSON bytes
    assert body["export_id"] == "e-amqp10"
    # RabbitMQ 3.10 carries application properties only as one opaque header (messaging.md §2):
    # the documented reason AMQP 0-9-1 is the recommended mode.
    assert "x-amqp-1.0-app-properties" in p.headers
    assert "fedora_messaging_schema" not in p.headers


@pytest.mark.parametrize("scheme", ["amqp", "amqp1+amqp"])
def test_unreachable_broker_fails_fast_and_keeps_message(tmp_path, scheme) -> None:
    port = free_port()  # nothing listens there
    url = f"{scheme}://guest:guest@127.0.0.1:{port}/" if scheme == "amqp" else f"{scheme}://127.0.0.1:{port}"
    cfg = NotifyConfig(url=url, spool_dir=str(tmp_path), connect_timeout=3)
    t0 = time.monotonic()
    notify_export_complete(SUMMARY, export_id="e-down", source="/rv/", config=cfg)  # must not raise
    assert time.monotonic() - t0 < 5
    (p,) = Outbox(tmp_path).pending()
    assert p.attempts == 1 and p.last_error and "cannot connect" in p.last_error


def test_broker_down_then_up_delivers_exactly_once(rabbit, broker, tmp_path) -> None:
    prefix = _prefix()
    spool = tmp_path / "outbox"
    # A durable queue survives the restart, so a message sent while it is down would show up here.
    consumer = TopicConsumer(broker.amqp_url, f"{prefix}.#", queue=f"q-{prefix}", durable=True)
    consumer.conn.close()
    cfg = NotifyConfig(url=broker.amqp_url, topic_prefix=prefix, spool_dir=str(spool), connect_timeout=3)

    rabbit.stop()
    t0 = time.monotonic()
    notify_export_complete(SUMMARY, export_id="e-outage", source="/rv/9/", config=cfg)
    assert time.monotonic() - t0 < 5, "a broker outage must not hold up the export"
    assert flush(cfg) == (0, 1)
    (pending,) = Outbox(spool).pending()
    msg_id = pending.message.id
    assert pending.attempts == 2

    listed = _cli("notifications", "--spool", str(spool), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["export_id"], row["attempts"]) == (msg_id, "e-outage", 2)
    plain = _cli("notifications", "--spool", str(spool))
    assert msg_id in plain.stdout and "1 pending" in plain.stdout
    failed = _cli("notifications", "--spool", str(spool), "--flush", "--url", broker.amqp_url)
    assert failed.returncode == 1 and "not delivered 1" in failed.stdout

    rabbit.start()
    done = _cli("notifications", "--spool", str(spool), "--flush", "--url", broker.amqp_url)
    assert done.returncode == 0, done.stderr
    assert "sent 1, not delivered 0" in done.stdout
    assert Outbox(spool).pending() == []

    consumer.reconnect()
    try:
        got = consumer.drain(expect=1, settle=1.0)
    finally:
        consumer.close()
    assert [g.properties.message_id for g in got] == [msg_id]  # exactly once, same id as queued
    assert json.loads(got[0].body)["export_id"] == "e-outage"
    # Nothing left to send: a second flush is a no-op.
    assert flush(cfg) == (0, 0)


def test_sender_reuses_one_connection_for_many(broker, tmp_path) -> None:
    prefix = _prefix()
    consumer = TopicConsumer(broker.amqp_url, f"{prefix}.#")
    box = Outbox(tmp_path)
    ids = [
        box.enqueue(
            build_export_complete(SUMMARY, export_id=f"e{i}", source="s", topic_prefix=prefix)
        ).message.id
        for i in range(20)
    ]
    try:
        for url in (broker.amqp_url,):
            sender = make_sender(NotifyConfig(url=url, spool_dir=str(tmp_path)))
            try:
                assert box.flush(sender) == (20, 0)
            finally:
                sender.close()
        got = consumer.drain(expect=20)
    finally:
        consumer.close()
    assert [g.properties.message_id for g in got] == ids  # in enqueue order


def test_watch_delivers_periodically(broker, tmp_path) -> None:
    prefix = _prefix()
    consumer = TopicConsumer(broker.amqp_url, f"{prefix}.#")
    box = Outbox(tmp_path)
    box.enqueue(build_export_complete(SUMMARY, export_id="w1", source="s", topic_prefix=prefix))
    url = broker.amqp_url
    proc = subprocess.Popen(
        [*CLI, "notifications", "--watch", "--interval", "0.5", "--spool", str(tmp_path), "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = consumer.drain(expect=1, timeout=15)
        box.enqueue(build_export_complete(SUMMARY, export_id="w2", source="s", topic_prefix=prefix))
        second = consumer.drain(expect=1, timeout=15)
    finally:
        proc.terminate()  # the watcher we started
        proc.wait(timeout=10)
        consumer.close()
    assert [json.loads(g.body)["export_id"] for g in first + second] == ["w1", "w2"]
    assert box.pending() == []


def test_notifications_cli_without_url_is_a_usage_error(tmp_path) -> None:
    r = _cli("notifications", "--spool", str(tmp_path), "--flush", env_extra={"FEDORA_MIRROR_AMQP_URL": ""})
    assert r.returncode == 2
    assert r.stderr.strip().startswith("fedora-mirror: no broker URL")
    assert "Traceback" not in r.stderr
    r = _cli("notifications", "--spool", str(tmp_path), "--flush", "--url", "http://x/")
    assert r.returncode == 2 and "unsupported broker URL scheme" in r.stderr


def test_amqps_client_certificate_external_auth(rabbit, broker, tmp_path) -> None:
    """Fedora's setup: TLS, peer verification both ways, SASL EXTERNAL with the certificate's CN."""
    _, got = _notify_and_receive(
        broker, tmp_path, "e-tls", "/rv/", f"amqps://127.0.0.1:{rabbit.tls_port}/%2F", **_client_tls(rabbit)
    )
    assert Outbox(tmp_path).pending() == []
    assert json.loads(got.body)["export_id"] == "e-tls"
    assert got.properties.headers["fedora_messaging_schema"] == SCHEMA


def test_amqps_without_client_certificate_is_refused_and_kept(rabbit, broker, tmp_path) -> None:
    cfg = NotifyConfig(
        url=f"amqps://127.0.0.1:{rabbit.tls_port}/%2F", spool_dir=str(tmp_path), ca_cert=rabbit.tls.ca_cert
    )
    notify_export_complete(SUMMARY, export_id="e-nocert", source="/rv/", config=cfg)
    (p,) = Outbox(tmp_path).pending()
    assert "cannot connect" in (p.last_error or "")


def test_amqp10_over_tls_with_external_auth(rabbit, broker, tmp_path) -> None:
    """AMQP 1.0 + TLS client certificate + SASL EXTERNAL works on RabbitMQ 3.10.

    ``localhost``, not ``127.0.0.1``: proton's peer-name check does not match IP addresses in the
    certificate (observed: "certificate verify failed" with the same files and ``127.0.0.1``).
    """
    _, got = _notify_and_receive(
        broker,
        tmp_path,
        "e-tls10",
        "/rv/",
        f"amqp1+amqps://localhost:{rabbit.tls_port}",
        **_client_tls(rabbit),
    )
    assert Outbox(tmp_path).pending() == []
    assert json.loads(got.body)["export_id"] == "e-tls10"
