"""Load the metadata directory and keep it current, re-parsing only the files that changed.

Reload mechanism: a daemon thread per process polls every ``data_dir_polling_interval`` seconds
(0 disables it). It is started lazily by the first request a process serves (never at import
time, and again in a forked worker, whose copy of the parent's thread does not run). A file is
"changed" when its (mtime_ns, size, inode) differs, so in-place edits, atomic renames, additions
and removals are all seen.
"""

from __future__ import annotations

import errno
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
from crane_fedora.metadata import jsonsteps
from crane_fedora.metadata.index import Index, build_index, log_new_duplicates
from crane_fedora.metadata.model import MetadataError, NativeRepo, Repo
from crane_fedora.metadata.parse import SkipFile, parse_bytes

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]
#: Directory levels scanned below data_dir: enough for the deepest repository name (255
#: characters, at most 128 components, one directory each), far from Python's recursion limit
#: (a 1,100-level tree raised RecursionError out of create_app, so no worker could boot).
MAX_DEPTH = 130
#: Errors that mean "not there (any more)": a directory removed during a scan is simply gone.
#: Anything else (EACCES above all) means "there, but we cannot see inside": keep what we had.
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR})
#: Seconds a replaced repository is kept before it is taken apart (see ``_bury``): far longer
#: than any request that could still be reading the index it was part of.
RETIRE_AFTER = 5.0
#: Entries (manifests + blobs) above which a replaced repository is taken apart step by step;
#: a smaller one is freed at once in well under a millisecond.
BURY_ABOVE = 2000


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
        #: Directories (relative to data_dir, "." for itself) the last scan could not read, with
        #: the reason. Their repositories are kept; /healthz reports them (503).
        self.unreadable: tuple[tuple[str, str], ...] = ()
        #: Replaced or removed repositories, with the time they left the index (``_bury``).
        self._retired: list[tuple[float, Repo]] = []
        #: Started and stopped with the poller (see :meth:`ensure_poller`); set by create_app.
        self.listener: Startable | None = None
        #: Called with each new index after a background reload, so that work derived from a
        #: snapshot (the home page's summaries) is done there and not by a request.
        self.on_reload: list[Callable[[Index], object]] = []
        #: Called with the seconds of every refresh that rebuilt the index (metrics); set by create_app.
        self.on_refresh_time: Callable[[float], None] | None = None

    # -- scanning ---------------------------------------------------------------------------
    def _scan(self) -> tuple[dict[str, Signature], dict[str, str]] | None:
        """Every ``*.json`` under data_dir (links followed, dot-names skipped) with its signature,
        and the directories that could not be read (full path -> reason); None if data_dir is gone.

        Why not ``os.walk``: this runs every poll over every file, and ``fstatat`` relative to an
        open directory (``os.scandir(fd)``) is about a quarter cheaper than stat by full path.
        Why the second result: an unreadable directory (``chmod 000``, an NFS permission change)
        is not an empty one; treating it as empty silently dropped every repository under it.
        """
        try:
            if not stat.S_ISDIR(os.stat(self.data_dir).st_mode):
                return None
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            return {}, {self.data_dir: os.strerror(exc.errno or 0)}
        found: dict[str, Signature] = {}
        problems: dict[str, str] = {}
        self._scan_dir(self.data_dir, found, problems, set())
        return found, problems

    def _scan_dir(
        self,
        path: str,
        found: dict[str, Signature],
        problems: dict[str, str],
        seen: set[tuple[int, int]],
        depth: int = 0,
    ) -> None:
        if depth > MAX_DEPTH:
            log.warning("metadata directory %s is nested too deeply; not scanned", path[:300])
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            if exc.errno not in _GONE:
                problems[path] = os.strerror(exc.errno or 0)
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
                        except OSError as exc:
                            if exc.errno not in _GONE:  # e.g. a directory readable but not searchable
                                problems[path] = os.strerror(exc.errno or 0)
                            continue  # vanished or dangling link
                        if stat.S_ISREG(st.st_mode):
                            found[f"{path}/{name}"] = (st.st_mtime_ns, st.st_size, st.st_ino)
                    elif entry.is_dir():
                        subdirs.append(name)
        except OSError as exc:  # the listing itself failed half-way (I/O error, NFS)
            problems[path] = os.strerror(exc.errno or 0)
        finally:
            os.close(fd)
        for name in sorted(subdirs):
            self._scan_dir(f"{path}/{name}", found, problems, seen, depth + 1)

    def _note_unreadable(self, problems: dict[str, str]) -> None:
        """Log once per state change (not every poll) and publish the list for /healthz."""
        top = len(self.data_dir) + 1
        now = tuple(sorted((p[top:] or ".", why) for p, why in problems.items()))
        before = dict(self.unreadable)
        for rel, why in now:
            if before.get(rel) != why:
                log.error(
                    "metadata directory %s under data_dir %s cannot be read (%s); keeping the "
                    "repositories last read from it, /healthz reports 503 until it is readable",
                    rel,
                    self.data_dir,
                    why,
                )
        after = dict(now)
        for rel in before:
            if rel not in after:
                log.warning("metadata directory %s under data_dir %s is readable again", rel, self.data_dir)
        self.unreadable = now

    def _parse(self, full: str, rel: str, previous: FileEntry | None, sig: Signature) -> FileEntry:
        """Parse one changed file; on failure keep the previous good repository and log once."""
        old_repo = previous.repo if previous else None
        cap = self.config.max_metadata_size
        try:
            # The cap is checked before reading and again while reading (the file may grow):
            # a 284 MB file took each worker to 1.7 GB, so it is refused unread.
            if sig[1] > cap:
                raise MetadataError(
                    f"{sig[1]} bytes, over [general] max_metadata_size ({cap} bytes); not read"
                )
            with open(full, "rb") as fh:
                data = fh.read(cap + 1)
            if len(data) > cap:
                raise MetadataError(f"over [general] max_metadata_size ({cap} bytes); not read")
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
                for hook in self.on_reload:
                    try:
                        hook(self.index)
                    except Exception:  # the new index is in service either way
                        log.exception("after reload (%s): %r failed", why, hook)
                return True
        except Exception:  # keep the thread alive whatever happens; the old index stays
            log.exception("metadata reload (%s) failed; keeping the current data", why)
        return False

    def _refresh(self) -> bool:
        with self._lock:
            scanned = self._scan()
            if scanned is None:
                self.unreadable = ()
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
            found, problems = scanned
            self._note_unreadable(problems)
            # Files under a directory we could not read are not gone: keep their last good parse.
            kept = tuple(p + "/" for p in problems)
            changed = False
            entries = self._entries
            now = time.monotonic()
            for gone in [p for p in entries if p not in found and not p.startswith(kept)]:
                if entries[gone].repo is not None:
                    self._retired.append((now, entries[gone].repo))  # type: ignore[arg-type]
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
                if entry is not None and entry.repo is not None and new.repo is not entry.repo:
                    self._retired.append((now, entry.repo))
                entries[full] = new
            if changed or not self.loaded:
                repos = [e.repo for e in entries.values() if e.repo is not None]
                errors = sum(1 for e in entries.values() if e.failed)
                new_index = build_index(
                    repos,
                    len(entries),
                    errors,
                    flatpak_registry=self.config.flatpak_registry if self.config.flatpak_index else None,
                    previous=self.index,
                )
                log_new_duplicates(self.index, new_index)
                self.index = new_index
                changed = True
            self.loaded = True
            self._bury(now)
            return changed

    def _bury(self, now: float) -> None:
        """Take apart repositories replaced at least :data:`RETIRE_AFTER` seconds ago.

        Why: dropping the last reference to a large repository frees its million objects in one
        C cascade (~80 ms for a 30 MB file) that holds the GIL and stalls every request of the
        worker. Holding replaced repositories here and emptying their tables entry by entry
        (``jsonsteps.dismantle``) spreads that cost; the delay makes sure no request still reads
        the index they were part of.
        """
        keep = []
        for retired_at, repo in self._retired:
            if now - retired_at < RETIRE_AFTER:
                keep.append((retired_at, repo))
            elif isinstance(repo, NativeRepo) and len(repo.manifests) + len(repo.blobs) > BURY_ABOVE:
                for proxy in (repo.tags, repo.manifests, repo.blobs):
                    for table in gc.get_referents(proxy):  # the dict behind the read-only view
                        if type(table) is dict:
                            jsonsteps.dismantle(table, 1)
        self._retired = keep

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
