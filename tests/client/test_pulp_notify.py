"""The Pulp hook end to end: a real export record in a real Pulp → a message on a real RabbitMQ.

The hook runs in a child process with the test Pulp's own settings (``PULP_SETTINGS``), exactly as
inside the worker after ``export_to_mirror`` saved the record. (Wiring ``after_export`` to it is
the plugin's side; see ``pulp_fedora_mirror/notify/pulp_hook.py``.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.harness.rabbitmq import ThrowawayRabbitMQ
from tests.notify.consumer import TopicConsumer

pytestmark = [pytest.mark.pulp, pytest.mark.amqp]

HOOK = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulpcore.app.settings")
import django
django.setup()
from django.conf import settings
settings.FEDORA_MIRROR_NOTIFY = json.loads(sys.argv[1])
from pulp_fedora_mirror.app.models import MirrorExport
from pulp_fedora_mirror.notify.pulp_hook import notify_from_pulp
export = MirrorExport.objects.get(pk=sys.argv[2])
notify_from_pulp(export, export.summary)
"""


@pytest.fixture(scope="module")
def rabbit() -> Iterator[ThrowawayRabbitMQ]:
    node = ThrowawayRabbitMQ()
    node.start()
    try:
        yield node
    finally:
        node.destroy()


def test_hook_sends_export_complete_for_a_real_export(pulp, candidate, stable, rabbit, tmp_path) -> None:
    if pulp.handle is None:
        pytest.skip("needs the harness Pulp (its settings file), not PULP_TEST_URL")
    c = pulp.client()
    name = f"mirror-{uuid.uuid4().hex[:6]}"
    base = f"{pulp.export_dir.rstrip('/')}/{name}"
    c.request(
        "POST",
        "exporters/fedora_mirror/mirror/",
        json={
            "name": name,
            "path": f"{base}/tree",
            "metadata_path": f"{base}/metadata",
            "master_url": "https://dl.example.org/pub/containers",
        },
    )
    promoted, published = c.release(
        candidate["name"], stable["name"], ["latest"], name, "demo/hello", timeout=120
    )
    export = c.export_summary(published)
    assert export is not None

    prefix = f"org.fedoraproject.test{uuid.uuid4().hex[:8]}"
    consumer = TopicConsumer(rabbit.broker.amqp_url, f"{prefix}.#")
    conf = {"URL": rabbit.broker.amqp_url, "TOPIC_PREFIX": prefix, "SPOOL_DIR": str(tmp_path / "outbox")}
    pk = export["pulp_href"].rstrip("/").rsplit("/", 1)[-1]
    env = dict(pulp.handle.env)
    r = subprocess.run(
        [sys.executable, "-c", HOOK, json.dumps(conf), pk],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert r.returncode == 0, r.stderr[-2000:]
        (got,) = consumer.drain(expect=1)
    finally:
        consumer.close()
    assert got.routing_key == f"{prefix}.pulp.fedora_mirror.export.complete"
    body = json.loads(got.body)
    version = next(h for h in promoted.created_resources if "/versions/" in h)
    assert body["export_id"] == export["pulp_href"]
    assert body["repository_version"] == version
    assert body["repository"] == stable["name"]
    assert body["name"] == "demo/hello"
    assert set(body["tags"]) == {"latest"}
    assert body["tags"] == export["summary"]["tags"]
    assert body["started_at"] and body["completed_at"]
    assert got.properties.headers["fedora_messaging_container_demo/hello"] is True
    assert not list((tmp_path / "outbox").glob("*.json"))
