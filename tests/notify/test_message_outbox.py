"""Message builder and outbox, on a real filesystem (no broker needed)."""

from __future__ import annotations

import json
import os
import re
import uuid

import pytest

from pulp_fedora_mirror.export.source import ExportSummary
from pulp_fedora_mirror.notify import Message, Outbox, SendError, build_export_complete, load_config

SUMMARY = {
    "name": "fedora/busybox",
    "tags": {"latest": "sha256:" + "a" * 64, "41": "sha256:" + "b" * 64},
    "manifests": 3,
    "manifests_written": 3,
    "blobs": 4,
    "blobs_linked": 3,
    "blobs_copied": 1,
    "bytes_written": 12345,
    "metadata_path": "/srv/crane/metadata/fedora/busybox.json",
}


def test_message_topic_headers_body() -> None:
    m = build_export_complete(SUMMARY, export_id="/pulp/api/v3/exports/1/", source="/pulp/rv/1/")
    assert m.topic == "org.fedoraproject.dev.pulp.fedora_mirror.export.complete"
    assert str(uuid.UUID(m.id, version=4)) == m.id
    assert m.headers["fedora_messaging_severity"] == 20
    assert m.headers["fedora_messaging_schema"] == "pulp_fedora_mirror.export.complete.v1"
    assert m.headers["fedora_messaging_container_fedora/busybox"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", m.headers["sent-at"])
    b = m.body
    assert b["export_id"] == "/pulp/api/v3/exports/1/"
    assert b["repository_version"] == "/pulp/rv/1/"
    assert b["tags"] == SUMMARY["tags"]
    assert (b["manifests"], b["blobs"], b["blobs_written"], b["bytes_written"]) == (3, 4, 4, 12345)
    assert b["metadata_path"] == SUMMARY["metadata_path"]
    assert json.loads(json.dumps(b)) == b  # a JSON object, as fedora-messaging requires


def test_message_from_dataclass_and_prefix() -> None:
    s = ExportSummary(name="x", tags={"t": "sha256:" + "c" * 64}, manifests=1, blobs=2)
    m = build_export_complete(s, export_id="e1", source="oci:/x", topic_prefix="org.fedoraproject.prod")
    assert m.topic == "org.fedoraproject.prod.pulp.fedora_mirror.export.complete"
    assert m.body["tags"] == {"t": "sha256:" + "c" * 64}
    with pytest.raises(ValueError, match="topic prefix"):
        build_export_complete(s, export_id="e1", source="", topic_prefix="bad prefix")
    with pytest.raises(ValueError, match="export_id"):
        build_export_complete(s, export_id="", source="")


def test_each_message_gets_a_new_id_but_roundtrips_stably() -> None:
    a = build_export_complete(SUMMARY, export_id="e", source="s")
    b = build_export_complete(SUMMARY, export_id="e", source="s")
    assert a.id != b.id
    assert Message.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_outbox_enqueue_is_atomic_ordered_and_deduplicated(tmp_path) -> None:
    box = Outbox(tmp_path / "spool")
    m1 = build_export_complete(SUMMARY, export_id="e1", source="s")
    m2 = build_export_complete(SUMMARY, export_id="e2", source="s")
    p1 = box.enqueue(m1)
    p2 = box.enqueue(m2)
    # A retried export (same export id) does not queue a second message.
    again = box.enqueue(build_export_complete(SUMMARY, export_id="e1", source="s"))
    assert again.message.id == m1.id
    assert [p.message.id for p in box.pending()] == [m1.id, m2.id]
    assert p1.path.name < p2.path.name
    # No temp files left behind; files are complete JSON.
    assert sorted(os.listdir(box.dir)) == sorted([".lock", p1.path.name, p2.path.name])
    assert json.loads(p1.path.read_text())["id"] == m1.id


class _ListSender:
    """A real in-process Sender implementation (the protocol, not a mock of a library)."""

    def __init__(self, fail_on: set[str] | None = None, unreachable: bool = False) -> None:
        self.sent: list[str] = []
        self.fail_on = fail_on or set()
        self.unreachable = unreachable

    def send(self, message: Message) -> None:
        if message.dedup_key in self.fail_on:
            raise SendError("refused", unreachable=self.unreachable)
        self.sent.append(message.id)

    def close(self) -> None:
        pass


def test_flush_deletes_only_confirmed_and_records_failures(tmp_path) -> None:
    box = Outbox(tmp_path)
    ids = [
        box.enqueue(build_export_complete(SUMMARY, export_id=f"e{i}", source="s")).message.id
        for i in range(3)
    ]
    sender = _ListSender(fail_on={"e1"})
    assert box.flush(sender) == (2, 1)
    assert sender.sent == [ids[0], ids[2]]
    (left,) = box.pending()
    assert left.message.id == ids[1]  # same id on retry
    assert left.attempts == 1 and left.last_error == "refused"
    assert box.flush(_ListSender()) == (1, 0)
    assert box.pending() == []


def test_flush_stops_at_first_unreachable(tmp_path) -> None:
    box = Outbox(tmp_path)
    for i in range(3):
        box.enqueue(build_export_complete(SUMMARY, export_id=f"e{i}", source="s"))
    assert box.flush(_ListSender(fail_on={"e0"}, unreachable=True)) == (0, 3)
    assert len(box.pending()) == 3


def test_config_layers(tmp_path, monkeypatch) -> None:
    f = tmp_path / "notify.toml"
    f.write_text(
        '[notify]\nurl = "amqp://file/"\ntopic_prefix = "org.fedoraproject.stg"\nconnect_timeout = 2\n'
    )
    env = {"FEDORA_MIRROR_SPOOL": str(tmp_path / "s"), "FEDORA_MIRROR_AMQP_URL": "amqp://env/"}
    cfg = load_config(f, env=env)
    assert (cfg.url, cfg.topic_prefix, cfg.spool_dir, cfg.connect_timeout) == (
        "amqp://env/",
        "org.fedoraproject.stg",
        str(tmp_path / "s"),
        2.0,
    )
    assert load_config(f, env=env, url="amqp1+amqp://cli").url == "amqp1+amqp://cli"
