"""The fedora-messaging schema class: what a consumer on Fedora's bus gets from our messages.

A real message goes through a real RabbitMQ and is turned into a message object by
fedora-messaging's own ``get_message`` (what its consumers run), which finds our class through the
``fedora.messages`` entry point of this installed package.
"""

from __future__ import annotations

import copy
import logging

import jsonschema
import pytest
from fedora_messaging import message as fm

from pulp_fedora_mirror.notify import build_export_complete
from pulp_fedora_mirror.notify.message import SCHEMA
from pulp_fedora_mirror.notify.schema import ExportCompleteV1

from .test_rabbitmq import SUMMARY, _notify_and_receive

pytestmark = pytest.mark.amqp


def test_our_body_validates_and_bad_bodies_do_not() -> None:
    msg = build_export_complete(SUMMARY, export_id="/pulp/api/v3/exports/1/", source="/rv/1/")
    ExportCompleteV1(body=msg.body, topic=msg.topic).validate()
    for breakage in (
        lambda b: b.pop("export_id"),
        lambda b: b["tags"].update({"latest": "md5:abc"}),
        lambda b: b.update({"blobs": -1}),
        lambda b: b.update({"name": ""}),
    ):
        body = copy.deepcopy(msg.body)
        breakage(body)
        with pytest.raises(jsonschema.ValidationError):
            ExportCompleteV1(body=body, topic=msg.topic).validate()


def test_the_entry_point_is_the_header_value() -> None:
    assert fm.get_class(SCHEMA) is ExportCompleteV1


def test_a_fedora_messaging_consumer_gets_a_validated_export_complete(
    broker, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix, got = _notify_and_receive(broker, tmp_path, "/pulp/api/v3/exports/7/", "/rv/7/", broker.amqp_url)
    with caplog.at_level(logging.WARNING, logger="fedora_messaging"):
        msg = fm.get_message(got.routing_key, got.properties, got.body)
    assert not [r for r in caplog.records if r.name.startswith("fedora_messaging")], caplog.text
    assert isinstance(msg, ExportCompleteV1)
    assert msg.topic == f"{prefix}.pulp.fedora_mirror.export.complete"
    assert msg.severity == fm.INFO
    assert msg.containers == ["fedora/busybox"]
    assert msg.app_name == "pulp_fedora_mirror"
    assert msg.body["tags"] == SUMMARY["tags"]
    assert msg.summary.startswith("fedora/busybox published to the master mirror (")
    assert "export: /pulp/api/v3/exports/7/" in str(msg)
