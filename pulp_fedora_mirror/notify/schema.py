"""fedora-messaging schema of ``export.complete``, for consumers on Fedora's message bus.

Registered as entry point ``pulp_fedora_mirror.export.complete.v1`` in group ``fedora.messages``
(the value of the ``fedora_messaging_schema`` header our senders set), so a fedora-messaging
consumer that has this package installed receives an :class:`ExportCompleteV1` whose body was
validated, instead of a schema-less base ``Message`` and two "publisher is misbehaving" errors.

Only consumers import this module (it needs ``fedora-messaging``, extra ``[messages]``); the
publishing side builds the same body in :mod:`pulp_fedora_mirror.notify.message`. Schemas are
immutable: a change to the body means a new class and entry point (``…v2``).
"""

from __future__ import annotations

from typing import Any

from fedora_messaging import message

from .message import TOPIC

_DIGEST = {"type": "string", "pattern": "^sha256:[a-f0-9]{64}$"}


class ExportCompleteV1(message.Message):
    """A container repository was exported to the master mirror (tree, metadata and file list)."""

    topic = TOPIC
    severity = message.INFO
    body_schema: dict[str, Any] = {
        "id": "https://pagure.io/pulp-fedora-mirror/export.complete.v1.json",
        "$schema": "http://json-schema.org/draft-04/schema#",
        "description": "A Pulp container repository version was published to the master mirror",
        "type": "object",
        "properties": {
            "export_id": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "repository": {"type": "string"},
            "repository_version": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": _DIGEST},
            "manifests": {"type": "integer", "minimum": 0},
            "manifests_written": {"type": "integer", "minimum": 0},
            "blobs": {"type": "integer", "minimum": 0},
            "blobs_written": {"type": "integer", "minimum": 0},
            "bytes_written": {"type": "integer", "minimum": 0},
            "metadata_path": {"type": "string"},
            "metadata_changed": {"type": "boolean"},
            "filelist_changed": {"type": "boolean"},
            "started_at": {"type": ["string", "null"]},
            "completed_at": {"type": "string"},
        },
        "required": ["export_id", "name", "tags", "manifests", "blobs", "completed_at"],
    }

    @property
    def app_name(self) -> str:
        return "pulp_fedora_mirror"

    @property
    def containers(self) -> list[str]:
        """Registry repository names this message is about (fedora-messaging header filter)."""
        return [self.body["name"]]

    @property
    def summary(self) -> str:
        tags = sorted(self.body.get("tags", {}))
        shown = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
        return f"{self.body['name']} published to the master mirror ({shown or 'no tags'})"

    def __str__(self) -> str:
        lines = [self.summary, ""]
        lines += [f"  {tag}: {digest}" for tag, digest in sorted(self.body.get("tags", {}).items())]
        lines += [
            "",
            f"manifests: {self.body.get('manifests', 0)}, blobs: {self.body.get('blobs', 0)}, "
            f"written: {self.body.get('blobs_written', 0)} blob(s), "
            f"{self.body.get('manifests_written', 0)} manifest(s), "
            f"{self.body.get('bytes_written', 0)} bytes",
            f"export: {self.body['export_id']}",
        ]
        return "\n".join(lines)

    @property
    def url(self) -> str | None:
        return None
