"""Publish notifications from the real Pulp worker to a real RabbitMQ (issue 4).

A real export through REST must put an ``export.complete`` message on the bus; with the broker
down the export still completes, the message waits in the outbox, and the worker's scheduled
``flush_notifications`` task delivers it exactly once after the broker comes back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
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


def _export(api: PulpApi, exporter: dict[str, Any], repo: SyncedRepo) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    task = api.run(api.post(exporter["pulp_href"] + "exports/", {"repository": repo.href}))
    (href,) = [h for h in task["created_resources"] if "/exports/" in h]
    return api.ok(api.get(href), 200), time.monotonic() - start


def test_export_announces_itself(
    api: PulpApi, make_exporter: Any, synced_repo: SyncedRepo, bus: dict
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


def test_broker_down_during_export_then_delivered_once(
    api: PulpApi, make_exporter: Any, synced_repo: SyncedRepo, bus: dict
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
        pending = list(bus["spool"].glob("*.json"))
        assert len(pending) == 1, pending
        assert json.loads(pending[0].read_text())["body"]["export_id"] == export["pulp_href"]
        time.sleep(3)  # a few scheduled retries fail while the broker is down: still pending
        assert len(list(bus["spool"].glob("*.json"))) == 1
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
    assert not list(bus["spool"].glob("*.json"))
