"""Publish notifications from the real Pulp worker to a real RabbitMQ (issues 4 and 13).

A real export through REST must put an ``export.complete`` message on the bus; with the broker
down the export still completes, the message waits in the outbox (Pulp's database), and the
worker's scheduled ``flush_notifications`` task delivers it exactly once after the broker comes
back. The outbox is shared by all workers (a notice one worker recorded is sent by a worker on
another "host", with another spool directory), and the message leaves only after the export
task has ended and released the exporter's lock.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pulp import PulpServer
from tests.harness.rabbitmq import ThrowawayRabbitMQ
from tests.notify.consumer import TopicConsumer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import SyncedRepo, notify_config_path

pytestmark = [pytest.mark.pulp, pytest.mark.amqp]


@pytest.fixture(scope="module")
def rabbit(state_dir: Path) -> Iterator[ThrowawayRabbitMQ]:
    with ThrowawayRabbitMQ() as node:  # destroyed (stopped, state removed) on exit
        yield node


@pytest.fixture
def bus(
    pulp: PulpServer, state_dir: Path, rabbit: ThrowawayRabbitMQ, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Point the running Pulp's notifications at ``rabbit`` and (re)configure the retry schedule
    the way an admin does: settings, then ``pulpcore-manager migrate``."""
    prefix = f"org.fedoraproject.test{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "outbox"
    conf = notify_config_path(state_dir)
    conf.write_text(
        f'url = "{rabbit.broker.amqp_url}"\n'
        f'topic_prefix = "{prefix}"\n'
        f'spool_dir = "{spool}"\n'
        "connect_timeout = 2\n"
    )
    pulp.manage("migrate", "--noinput")
    try:
        yield {"prefix": prefix, "spool": spool, "rabbit": rabbit}
    finally:
        conf.unlink()
        pulp.manage("migrate", "--noinput")  # removes the schedule again


def _pending(pulp: PulpServer) -> list[dict[str, Any]]:
    """The database outbox, as an operator lists it (``pulpcore-manager fedora_mirror_notifications``)."""
    out = pulp.manage("fedora_mirror_notifications", "--json").stdout
    return json.loads(out[out.index("[") :])


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _export(api: PulpApi, exporter: dict[str, Any], repo: SyncedRepo) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    task = api.run(api.post(exporter["pulp_href"] + "exports/", {"repository": repo.href}))
    (href,) = [h for h in task["created_resources"] if "/exports/" in h]
    return api.ok(api.get(href), 200), time.monotonic() - start


def test_export_announces_itself(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, bus: dict
) -> None:
    exporter = make_exporter()
    consumer = TopicConsumer(bus["rabbit"].broker.amqp_url, f"{bus['prefix']}.#")
    try:
        export, _ = _export(api, exporter, synced_repo)
        (got,) = consumer.drain(expect=1, timeout=20)
    finally:
        consumer.close()
    assert got.routing_key == f"{bus['prefix']}.pulp.fedora_mirror.export.complete"
    assert got.properties.content_type == "application/json" and got.properties.delivery_mode == 2
    assert got.properties.headers["fedora_messaging_severity"] == 20
    body = json.loads(got.body)
    assert body["export_id"] == export["pulp_href"]
    assert body["tags"] == export["summary"]["tags"] and body["tags"]
    assert body["name"] == export["params"]["name"]
    assert not list(bus["spool"].glob("*.json")), "delivered messages leave the outbox"
    assert not _pending(pulp), "delivered messages leave the outbox"


def test_broker_down_during_export_then_delivered_once(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, bus: dict
) -> None:
    rabbit: ThrowawayRabbitMQ = bus["rabbit"]
    # A durable queue survives the broker restart, so anything sent twice would show up twice.
    consumer = TopicConsumer(
        rabbit.broker.amqp_url, f"{bus['prefix']}.#", queue=f"q-{uuid.uuid4().hex[:8]}", durable=True
    )
    exporter = make_exporter()
    rabbit.stop()
    try:
        export, took = _export(api, exporter, synced_repo)
        # the export is not held up by the dead broker (connect timeout 2 s, one attempt)
        assert took < 30, took
        pending = _pending(pulp)
        assert len(pending) == 1, pending
        assert pending[0]["export_id"] == export["pulp_href"]
        time.sleep(3)  # a few scheduled retries fail while the broker is down: still pending
        pending = _pending(pulp)
        assert len(pending) == 1 and pending[0]["attempts"] >= 1, pending
        assert "cannot connect" in pending[0]["last_error"]
    finally:
        rabbit.start()
    consumer.reconnect()
    try:
        # delivered by the worker's scheduled flush_notifications, no other export needed
        got = consumer.drain(expect=1, timeout=60, settle=5)
    finally:
        consumer.close()
    assert len(got) == 1, [g.body for g in got]
    assert json.loads(got[0].body)["export_id"] == export["pulp_href"]
    assert not _pending(pulp)


SEND_TASK = "pulp_fedora_mirror.app.tasks.notify.send_notifications"
NOTICE_RESOURCE = "fedora_mirror:export-notice:"


def test_sent_after_the_export_released_its_lock(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, bus: dict
) -> None:
    """The message leaves from a separate task that pulpcore starts only after the export task
    ended: it takes shared a resource the export task holds exclusively, and nothing else."""
    exporter = make_exporter()
    consumer = TopicConsumer(bus["rabbit"].broker.amqp_url, f"{bus['prefix']}.#")
    try:
        start = api.ok(api.post(exporter["pulp_href"] + "exports/", {"repository": synced_repo.href}), 202)
        (got,) = consumer.drain(expect=1, timeout=30)
    finally:
        consumer.close()
    export_task = api.wait_task(start["task"])
    assert got.received_at >= _ts(export_task["finished_at"])
    held = export_task["reserved_resources_record"]
    (token,) = [r for r in held if r.startswith(NOTICE_RESOURCE)]
    assert any("mirrorexporter" in r and not r.startswith("shared:") for r in held), held
    senders = api.ok(api.get("tasks/", params={"name": SEND_TASK, "limit": 50}), 200)["results"]
    (sender,) = [t for t in senders if f"shared:{token}" in t["reserved_resources_record"]]
    sender = api.wait_task(sender["pulp_href"])
    assert _ts(sender["started_at"]) >= _ts(export_task["finished_at"])
    # it holds nothing exclusively and does not touch the exporter: the next export never waits
    assert all(r.startswith("shared:") for r in sender["reserved_resources_record"])
    assert not [r for r in sender["reserved_resources_record"] if "mirrorexporter" in r]


def test_notice_recorded_by_one_worker_is_sent_by_another(
    api: PulpApi, pulp: PulpServer, make_exporter: Any, synced_repo: SyncedRepo, bus: dict, tmp_path: Path
) -> None:
    """Two "hosts": the session worker records the notice while the broker is down, then goes
    away; a worker with another spool directory (``FEDORA_MIRROR_SPOOL``), the only one left,
    delivers it with its scheduled flush."""
    rabbit: ThrowawayRabbitMQ = bus["rabbit"]
    consumer = TopicConsumer(
        rabbit.broker.amqp_url, f"{bus['prefix']}.#", queue=f"q-{uuid.uuid4().hex[:8]}", durable=True
    )
    exporter = make_exporter()
    rabbit.stop()
    other = None
    try:
        export, _ = _export(api, exporter, synced_repo)
        assert [p["export_id"] for p in _pending(pulp)] == [export["pulp_href"]]
        pulp.stop_service("worker")  # host A goes away, with whatever it keeps locally
        spool_b = tmp_path / "host-b-spool"
        other = pulp.spawn_worker("worker-host-b", {"FEDORA_MIRROR_SPOOL": str(spool_b)})
        rabbit.start()
        consumer.reconnect()
        got = consumer.drain(expect=1, timeout=60, settle=5)
        assert [json.loads(g.body)["export_id"] for g in got] == [export["pulp_href"]]
        assert not _pending(pulp)
        assert not list(bus["spool"].glob("*.json")) and not list(spool_b.glob("*.json"))
    finally:
        if other is not None:
            pulp.kill_worker(other, signal.SIGTERM)
        pulp.start_service("worker")
        if not rabbit.running:
            rabbit.start()
        consumer.close()
