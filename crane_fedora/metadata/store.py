"""Load the metadata directory and keep it current, re-parsing only the files that changed.

Reload mechanism: a daemon thread per process polls every ``data_dir_polling_interval`` seconds
(0 disables it). It is started lazily by the first request a process serves (never at import
time, and again in a forked worker, whose copy of the parent's thread does not run). A file is
"changed" when its (mtime_ns, size, inode) differs, so in-place edits, atomic renames, additions
and removals are all seen.
"""

from __future__ import annotations

import gc
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from crane_fedora.config import Config
from crane_fedora.metadata.index import Index, build_index, log_new_duplicates
from crane_fedora.metadata.model import MetadataError, Repo
from crane_fedora.metadata.parse import SkipFile, parse_bytes

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]
#: Directory levels scanned below data_dir: enough for the deepest repository name (255
#: characters, at most 128 components, one directory each), far from Python's recursion limit
#: (a 1,100-level tree raised RecursionError out of create_app, so no worker could boot).
MAX_DEPTH = 130


class Startable(Protocol):
    """A per-process background helper started with the poller (the message listener)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(slots=True)
class FileEntry:
    """What we know about one file: its last seen signature and its last good parse."""

    sig: Signature
    repo: Repo | None
    failed: bool = False


class MetadataStore:
    """Owns the current :class:`Index` of one application; ``index`` is swapped atomically."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = os.path.abspath(config.data_dir)
        self.index = Index()
        self.loaded = False
        self._entries: dict[str, FileEntry] = {}
        self._lock = threading.Lock()
        #: Serialises whole refreshes, GC handling included: the poller and the listener may both
        #: reload, and interleaved gc.disable()/gc.enable() could leave the GC off for good.
        self._refresh_lock = threading.Lock()
        self._poller_pid = 0
        self._stop = threading.Event()
        self._missing_logged = False
        #: Started and stopped with the poller (see :meth:`ensure_poller`); set by create_app.
        self.listener: Startable | None = None
        #: Called with the seconds of every refresh that rebuilt the index (metrics); set by create_app.
        self.on_refresh_time: Callable[[float], None] | None = None

    # -- scanning ---------------------------------------------------------------------------
    def _scan(self) -> dict[str, Signature] | None:
        """Every ``*.json`` under data_dir (links followed, dot-names skipped) with its signature.

        Why not ``os.walk``: this runs every poll over every file, and ``fstatat`` relative to an
        open directory (``os.scandir(fd)``) is about a quarter cheaper than stat by full path.
        """
        if not os.path.isdir(self.data_dir):
            return None
        found: dict[str, Signature] = {}
        self._scan_dir(self.data_dir, found, set())
        return found

    def _scan_dir(
        self, path: str, found: dict[str, Signature], seen: set[tuple[int, int]], depth: int = 0
    ) -> None:
        if depth > MAX_DEPTH:
            log.warning("metadata directory %s is nested too deeply; not scanned", path[:300])
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        subdirs = []
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in seen:  # symlink loop
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == ".":
                        continue
                    if name.endswith(".json"):
                        try:
                            st = entry.stat()  # follows links
                        except OSError:
                            continue  # vanished or dangling link
                        if stat.S_ISREG(st.st_mode):
                            found[f"{path}/{name}"] = (st.st_mtime_ns, st.st_size, st.st_ino)
                    elif entry.is_dir():
                        subdirs.append(name)
        finally:
            os.close(fd)
        for name in sorted(subdirs):
            self._scan_dir(f"{path}/{name}", found, seen, depth + 1)

    def _parse(self, full: str, rel: str, previous: FileEntry | None, sig: Signature) -> FileEntry:
        """Parse one changed file; on failure keep the previous good repository and log once."""
        old_repo = previous.repo if previous else None
        try:
            with open(full, "rb") as fh:
                data = fh.read()
            return FileEntry(sig, parse_bytes(data, rel, self.config))
        except SkipFile as exc:
            log.info("metadata %s skipped: %s", rel, exc)
            return FileEntry(sig, None)
        except Exception as exc:
            # Not just MetadataError/OSError: json.loads raises RecursionError on deep nesting,
            # encoding a lone surrogate raises UnicodeEncodeError, an unhashable mediaType a
            # TypeError. Any of them escaping here stopped create_app (no worker could boot)
            # and aborted every later poll, so one bad file froze all reloads.
            if not isinstance(exc, (MetadataError, OSError)):
                exc = MetadataError(f"{type(exc).__name__}: {str(exc)[:200]}")
            if old_repo is not None:
                log.error("metadata %s rejected, keeping its last good version: %s", rel, exc)
            else:
                log.error("metadata %s rejected: %s", rel, exc)
            return FileEntry(sig, old_repo, failed=True)

    def refresh(self) -> bool:
        """Bring the index up to date; return True if it was rebuilt. Never raises for bad files.

        The cyclic GC is paused while parsing and the survivors are frozen afterwards: the index
        holds millions of acyclic objects, and letting every collection walk them cost more than
        the parsing itself (10,000 x 100 tags: seconds at load, hundreds of ms per reload).
        """
        with self._refresh_lock:
            gc_enabled = gc.isenabled()
            gc.collect(1)  # young cyclic garbage first, so that freezing below cannot pin it
            gc.disable()
            changed = False
            started = time.monotonic()
            try:
                changed = self._refresh()
                if changed and self.on_refresh_time is not None:
                    self.on_refresh_time(time.monotonic() - started)
                return changed
            finally:
                if gc_enabled:
                    gc.enable()
                if changed:
                    gc.freeze()  # the index is acyclic: frozen objects are still freed by refcount

    def reload(self, why: str) -> bool:
        """:meth:`refresh` for background threads: log the outcome, never raise.

        Shared by the poller and the message listener so that both reload (and log) the same way;
        on any error the current index stays in service.
        """
        try:
            started = time.monotonic()
            if self.refresh():
                log.info(
                    "metadata reloaded (%s) in %.1f ms: %d repositories",
                    why,
                    (time.monotonic() - started) * 1000,
                    len(self.index.repos),
                )
                return True
        except Exception:  # keep the thread alive whatever happens; the old index stays
            log.exception("metadata reload (%s) failed; keeping the current data", why)
        return False

    def _refresh(self) -> bool:
        with self._lock:
            found = self._scan()
            if found is None:
                if self.loaded or not self._missing_logged:
                    log.error(
                        "data_dir %s does not exist; serving no repositories until it does", self.data_dir
                    )
                    self._missing_logged = True
                changed = bool(self._entries)
                self._entries = {}
                if changed:
                    self.index = build_index([], 0, 0)
                self.loaded = False
                return changed
            changed = False
            entries = self._entries
            for gone in [p for p in entries if p not in found]:
                del entries[gone]
                changed = True
            for full, sig in found.items():
                entry = entries.get(full)
                if entry is not None and entry.sig == sig:
                    continue
                rel = full[len(self.data_dir) + 1 :]
                new = self._parse(full, rel, entry, sig)
                if entry is None or new.repo is not entry.repo or new.failed != entry.failed:
                    changed = True
                entries[full] = new
            if changed or not self.loaded:
                repos = [e.repo for e in entries.values() if e.repo is not None]
                errors = sum(1 for e in entries.values() if e.failed)
                new_index = build_index(repos, len(entries), errors)
                log_new_duplicates(self.index, new_index)
                self.index = new_index
                changed = True
            self.loaded = True
            return changed

    # -- polling ----------------------------------------------------------------------------
    def ensure_poller(self) -> None:
        """Start this process's poll thread and listener if not running (cheap; called per request).

        Keyed on the pid: a forked worker inherits the parent's attributes but not its threads.
        """
        if self._poller_pid == os.getpid():
            return
        if self.config.data_dir_polling_interval <= 0 and self.listener is None:
            return
        with self._lock:
            if self._poller_pid == os.getpid():
                return
            self._poller_pid = os.getpid()
            if self.config.data_dir_polling_interval > 0:
                self._stop = threading.Event()  # fresh: never one whose lock a dead thread held at fork
                stop = self._stop
                threading.Thread(
                    target=self._poll, args=(stop,), name="crane-metadata-poller", daemon=True
                ).start()
            if self.listener is not None:
                self.listener.start()

    def stop(self) -> None:
        """Stop the poll thread and the listener (tests, clean shutdown)."""
        self._stop.set()
        if self.listener is not None:
            self.listener.stop()
        self._poller_pid = 0

    def _poll(self, stop: threading.Event) -> None:
        interval = self.config.data_dir_polling_interval
        while not stop.wait(interval):
            self.reload("poll")
