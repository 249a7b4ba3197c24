"""A durable outbox without a database: one JSON file per pending message in a spool directory.

Why files: the export runs in a Pulp worker, from the CLI, or from cron, and the broker may be down
for hours. A message must survive a crash or restart of any of them, and no extra service may be
needed. Each file is written atomically (temp file, fsync, rename, fsync of the directory), so a
reader sees a whole message or none. A file is deleted only after the broker has confirmed the
message (AMQP 1.0 ``accepted`` disposition; AMQP 0-9-1 publisher confirm), so a message is never
lost; a crash between the confirm and the delete re-sends it once more (at-least-once), with the
same ``message_id`` and ``export_id``.

Only one flush runs at a time per spool (``flock`` on ``.lock``), so two flushers never send the
same file concurrently.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pulp_fedora_mirror.export.atomic import fsync_dir, write_bytes

from .message import Message

log = logging.getLogger(__name__)


class SendError(Exception):
    """A message was not confirmed by the broker. ``unreachable`` means later ones would fail too."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class Sender(Protocol):
    """What :meth:`Outbox.flush` needs: send one message, return only once the broker confirmed."""

    def send(self, message: Message) -> None: ...

    def close(self) -> None: ...


@dataclass
class Pending:
    """A message waiting in the outbox, with its delivery history."""

    path: Path
    message: Message
    enqueued_at: str
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Listing form (``fedora-mirror notifications --json``)."""
        return {
            "file": str(self.path),
            "id": self.message.id,
            "topic": self.message.topic,
            "export_id": self.message.body.get("export_id"),
            "name": self.message.body.get("name"),
            "enqueued_at": self.enqueued_at,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
        }


def _now() -> str:
    from .message import sent_at

    return sent_at()


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` is either the old content or the complete new one, durably."""
    write_bytes(str(path), (json.dumps(data, sort_keys=True, indent=1) + "\n").encode("utf-8"))


class Outbox:
    """The spool directory of pending messages."""

    def __init__(self, spool_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(spool_dir)

    def _ensure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)

    def enqueue(self, message: Message) -> Pending:
        """Store ``message`` durably; return what is pending for it.

        If a message with the same ``dedup_key`` (export id) is already pending, that one is kept
        and returned: a retried export task does not queue a second announcement.
        """
        self._ensure()
        with self._locked():
            if message.dedup_key:
                for p in self.pending():
                    if p.message.dedup_key == message.dedup_key and p.message.topic == message.topic:
                        return p
            # Time-ordered names: flush sends in enqueue order.
            path = self.dir / f"{time.time_ns():020d}-{message.id}.json"
            pending = Pending(path=path, message=message, enqueued_at=_now())
            self._write(pending)
            return pending

    def _write(self, p: Pending) -> None:
        data = p.message.to_dict()
        data["outbox"] = {
            "enqueued_at": p.enqueued_at,
            "attempts": p.attempts,
            "last_error": p.last_error,
            "last_attempt_at": p.last_attempt_at,
        }
        atomic_write_json(p.path, data)

    def pending(self) -> list[Pending]:
        """Pending messages, oldest first. Unreadable files are logged and left alone."""
        if not self.dir.is_dir():
            return []
        out = []
        for path in sorted(self.dir.glob("[0-9]*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                box = data.get("outbox", {})
                out.append(
                    Pending(
                        path=path,
                        message=Message.from_dict(data),
                        enqueued_at=box.get("enqueued_at", ""),
                        attempts=int(box.get("attempts", 0)),
                        last_error=box.get("last_error"),
                        last_attempt_at=box.get("last_attempt_at"),
                    )
                )
            except FileNotFoundError:  # sent by a concurrent flush meanwhile
                continue
            except (ValueError, KeyError, TypeError) as exc:
                log.error("outbox: skipping unreadable %s: %s", path, exc)
        return out

    @contextlib.contextmanager
    def _locked(self, wait: float = 30.0) -> Iterator[None]:
        """Exclusive lock on the spool (a flush in progress holds it while it sends)."""
        self._ensure()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"outbox {self.dir} is locked by another flush") from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)

    def move_to(self, store: Callable[[Message], Any], *, lock_wait: float = 5.0) -> int:
        """Hand every pending message to ``store``, oldest first, deleting each file once ``store``
        returned; return how many moved. Used to move a host's spool into Pulp's shared outbox."""
        if not self.dir.is_dir():
            return 0
        moved = 0
        with self._locked(lock_wait):
            for p in self.pending():
                store(p.message)
                p.path.unlink(missing_ok=True)
                moved += 1
            if moved:
                fsync_dir(str(self.dir))
        return moved

    def flush(self, sender: Sender, *, lock_wait: float = 30.0) -> tuple[int, int]:
        """Send every pending message; return ``(sent, failed)``.

        A file is removed only after ``sender.send`` returned (the broker confirmed). On an
        "unreachable" error the remaining messages are not tried (they would each wait for the
        connect timeout) and count as failed; they stay pending for the next flush.
        """
        sent = failed = 0
        with self._locked(lock_wait):
            items = self.pending()
            for i, p in enumerate(items):
                try:
                    sender.send(p.message)
                except SendError as exc:
                    failed += 1
                    p.attempts += 1
                    p.last_error = str(exc)
                    p.last_attempt_at = _now()
                    with contextlib.suppress(OSError):
                        self._write(p)
                    log.warning("outbox: message %s not sent: %s", p.message.id, exc)
                    if exc.unreachable:
                        failed += len(items) - i - 1
                        break
                    continue
                p.path.unlink(missing_ok=True)
                sent += 1
            if sent:
                fsync_dir(str(self.dir))
        return sent, failed
