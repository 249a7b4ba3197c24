"""The ``export.complete`` message: topic, fedora-messaging headers and JSON body.

Built here, once, and stored in the outbox exactly as it will go on the wire, so that every retry
sends the same bytes with the same ``message_id`` (consumers can de-duplicate on it, or on the
body's ``export_id``, which is also stable across Pulp task retries).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Default topic prefix: the development bus. Production is ``org.fedoraproject.prod``.
DEFAULT_TOPIC_PREFIX = "org.fedoraproject.dev"
#: Topic after the prefix; the routing key is ``<prefix>.<TOPIC>``.
TOPIC = "pulp.fedora_mirror.export.complete"
#: fedora-messaging schema name (entry-point name in group ``fedora.messages``).
SCHEMA = "pulp_fedora_mirror.export.complete.v1"
#: Distribution that provides the schema class (``pulp_fedora_mirror.notify.schema``), sent like
#: fedora-messaging 3.9 does.
SCHEMA_PACKAGE = "pulp-fedora-mirror"
#: fedora-messaging severities.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")


def sent_at(now: datetime | None = None) -> str:
    """``sent-at`` as fedora-messaging writes it: ISO 8601, UTC offset, no microseconds."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass
class Message:
    """One message as stored in the outbox and sent by every sender.

    ``topic`` is the full routing key (prefix included): that is what a fedora-messaging consumer
    sees as ``message.topic``.
    """

    topic: str
    body: dict[str, Any]
    headers: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    #: Key for "is this event already queued?" (the export id); not sent.
    dedup_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the spool file."""
        return {
            "id": self.id,
            "topic": self.topic,
            "headers": self.headers,
            "body": self.body,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "dedup_key": self.dedup_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Inverse of :meth:`to_dict`."""
        return cls(
            topic=data["topic"],
            body=dict(data["body"]),
            headers=dict(data["headers"]),
            id=data["id"],
            content_type=data.get("content_type", "application/json"),
            content_encoding=data.get("content_encoding", "utf-8"),
            dedup_key=data.get("dedup_key"),
        )


def _get(summary: Any, key: str, default: Any = None) -> Any:
    if isinstance(summary, Mapping):
        return summary.get(key, default)
    return getattr(summary, key, default)


def build_export_complete(
    summary: Mapping[str, Any] | Any,
    *,
    export_id: str,
    source: str = "",
    topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    repository: str = "",
    started_at: str | None = None,
    completed_at: str | None = None,
    severity: int = INFO,
    extra: Mapping[str, Any] | None = None,
) -> Message:
    """Build the message for one finished export.

    ``summary`` is an :class:`~pulp_fedora_mirror.export.source.ExportSummary` or its dict form
    (the Pulp export record's ``summary``). ``source`` is the Pulp repository version href (or an
    OCI layout path for CLI exports). ``export_id`` must be the same on every retry of the same
    export (the Pulp export's pk/href), so consumers can de-duplicate.
    """
    if not _PREFIX_RE.match(topic_prefix):
        raise ValueError(f"invalid topic prefix {topic_prefix!r}")
    if not export_id:
        raise ValueError("export_id is required (it is the consumers' de-duplication key)")
    name = str(_get(summary, "name", "") or "")
    tags = {str(k): str(v) for k, v in dict(_get(summary, "tags", {}) or {}).items()}
    now = sent_at()
    body: dict[str, Any] = {
        "export_id": export_id,
        "name": name,
        "repository": repository,
        "repository_version": source,
        "tags": tags,
        "manifests": int(_get(summary, "manifests", 0) or 0),
        "manifests_written": int(_get(summary, "manifests_written", 0) or 0),
        "blobs": int(_get(summary, "blobs", 0) or 0),
        "blobs_written": int(_get(summary, "blobs_linked", 0) or 0)
        + int(_get(summary, "blobs_copied", 0) or 0),
        "bytes_written": int(_get(summary, "bytes_written", 0) or 0),
        "metadata_path": str(_get(summary, "metadata_path", "") or ""),
        "metadata_changed": bool(_get(summary, "metadata_changed", False)),
        "filelist_changed": bool(_get(summary, "filelist_changed", False)),
        "started_at": started_at,
        "completed_at": completed_at or now,
    }
    if extra:
        body.update(extra)
    headers: dict[str, Any] = {
        "fedora_messaging_schema": SCHEMA,
        "fedora_messaging_schema_package": SCHEMA_PACKAGE,
        "fedora_messaging_severity": severity,
        "sent-at": now,
        "priority": 0,
    }
    if name:
        headers[f"fedora_messaging_container_{name}"] = True
    return Message(topic=f"{topic_prefix}.{TOPIC}", body=body, headers=headers, dedup_key=export_id)
