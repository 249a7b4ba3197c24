"""Prometheus metrics for operators: ``GET /metrics`` in the text exposition format.

What is counted: requests by endpoint and status, blob redirects by target (master or mirror),
metadata reloads (duration), and, read from the current snapshot at scrape time, its age, its
size and the metadata files rejected. Labels never carry client input (no repository names, no
paths), so the number of series is fixed.

Why ``prometheus_client``'s multi-process mode: gunicorn and granian answer with several worker
processes, each with its own counters; with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory,
cleared before each server start, shared by the workers), every process writes its counters there
and a scrape from any worker adds them all up. Without it each process reports only its own.

Why the request path only tallies: the registry answers a manifest GET in a few microseconds, and
a prometheus ``inc`` (a lock; in multi-process mode an mmap write) cost more than the 5% budget
(benchmarks/hotpath_bench.py). Requests bump an ``itertools.count``; a thread per worker process
moves the tallies into the prometheus counters every :data:`FLUSH_SECONDS`, and a scrape flushes
its own worker first, so other workers' counts are at most that old.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from crane_fedora.metadata.store import MetadataStore

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How stale another worker's counts may be in a scrape (each worker flushes this often).
FLUSH_SECONDS = 1.0


def endpoint_of(path: str) -> str:
    """The endpoint label of a request path, from its shape only (substring tests: cheap)."""
    if path[:4] == "/v2/" and len(path) > 4:
        if "/manifests/" in path:
            return "manifest"
        if "/blobs/" in path:
            return "blob"
        if path[-10:] == "/tags/list":
            return "tags"
        if path == "/v2/_catalog":
            return "catalog"
        return "v2_other"
    if path == "/v2" or path == "/v2/":
        return "base"
    if path[:3] == "/v2":
        return "v2_other"
    if path[:7] == "/index/":
        return "flatpak_index"
    if path[:15] == "/extensions/v2/":
        return "signatures"
    if path == "/metrics":
        return "metrics"
    if path == "/healthz":
        return "healthz"
    return "other"


def _forget_thread(metrics_ref: weakref.ref) -> Callable[[], None]:
    """``os.register_at_fork`` callback: the child has no flush thread yet."""

    def after_fork_in_child() -> None:
        metrics = metrics_ref()
        if metrics is not None:
            metrics.running = False
            metrics._flush_lock = threading.Lock()  # never one held by a thread that did not fork

    return after_fork_in_child


def _flush_every(metrics_ref: weakref.ref, stop: threading.Event) -> None:
    """Flush loop; holds only a weak reference, so a discarded app's thread ends by itself."""
    while not stop.wait(FLUSH_SECONDS):
        metrics = metrics_ref()
        if metrics is None:
            return
        try:
            metrics.flush()
        except Exception:  # never let metrics end the thread; counts stay tallied
            log.exception("flushing metrics failed")
        del metrics


class _SnapshotCollector:
    """Gauges read from this process's current metadata snapshot when scraped (all workers read
    the same files, so whichever worker answers the scrape reports the same snapshot)."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        index = self.store.index
        age = GaugeMetricFamily(
            "crane_metadata_snapshot_age_seconds", "Seconds since the metadata snapshot in service was built"
        )
        age.add_metric([], max(0.0, time.time() - index.loaded_at) if index.loaded_at else float("nan"))
        yield age
        repos = GaugeMetricFamily(
            "crane_index_repositories", "Repositories in the metadata snapshot, by kind", labels=["kind"]
        )
        repos.add_metric(["native"], index.native)
        repos.add_metric(["pulp2"], index.pulp2)
        yield repos
        files = GaugeMetricFamily("crane_metadata_files", "Metadata files in data_dir at the last reload")
        files.add_metric([], index.files)
        yield files
        rejected = GaugeMetricFamily(
            "crane_metadata_rejected_files",
            "Metadata files rejected at the last reload (each keeps its last good version, if any)",
        )
        rejected.add_metric([], index.errors)
        yield rejected


class Metrics:
    """The metrics of one application (its own registry: several apps in one process never clash)."""

    def __init__(self, store: MetadataStore) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "crane_requests",
            "HTTP requests answered, by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.redirects = Counter(
            "crane_blob_redirects",
            "Blob requests redirected, by target: the master mirror (not settled yet) or the mirrors",
            ["target"],
            registry=self.registry,
        )
        self.reloads = Histogram(
            "crane_metadata_reload_duration_seconds",
            "Metadata reloads that changed the snapshot: scan, parse and swap",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector(store)
        if not self.multiprocess:
            self.registry.register(self._snapshot)
        store.on_refresh_time = self.reloads.observe
        #: Per-process tallies: ``next()`` on an ``itertools.count`` is one atomic C call, where a
        #: prometheus ``inc`` takes a lock (and in multi-process mode writes an mmap): the request
        #: path only tallies, :meth:`flush` moves the tallies into the prometheus counters.
        self._tallies: dict[tuple[str, ...], itertools.count] = {
            ("redirect", target): itertools.count() for target in ("master", "mirror")
        }
        self._flushed: dict[tuple[str, ...], int] = {}
        self._flush_lock = threading.Lock()
        #: Whether this process runs the flush thread; a forked child starts with False (threads do
        #: not survive fork), so the request path tests a flag, not the pid (a system call).
        self.running = False
        self._stop = threading.Event()
        os.register_at_fork(after_in_child=_forget_thread(weakref.ref(self)))

    def count(self, path: str, status: str) -> None:
        """Count one answered request (the request path's whole metrics work, kept minimal)."""
        if not self.running:
            self.ensure_flusher()
        key = (endpoint_of(path), status)
        try:
            next(self._tallies[key])
        except KeyError:
            next(self._tallies.setdefault(key, itertools.count()))

    def count_redirect(self, target: str) -> None:
        next(self._tallies[("redirect", target)])

    def flush(self) -> None:
        """Add what was tallied since the last flush to the prometheus counters."""
        with self._flush_lock:
            for key, tally in list(self._tallies.items()):
                total = tally.__reduce__()[1][0]  # the count's next value: how often next() ran
                delta = total - self._flushed.get(key, 0)
                if delta:
                    self._flushed[key] = total
                    if key[0] == "redirect":
                        self.redirects.labels(key[1]).inc(delta)
                    else:  # (endpoint, WSGI status line): the label is the code
                        self.requests.labels(key[0], key[1][:3]).inc(delta)

    def ensure_flusher(self) -> None:
        """Start this process's flush thread unless it runs (a forked worker needs its own)."""
        if self.running:
            return
        with self._flush_lock:
            if self.running:
                return
            self.running = True
            self._stop = threading.Event()
            threading.Thread(
                target=_flush_every,
                args=(weakref.ref(self), self._stop),
                name="crane-metrics-flusher",
                daemon=True,
            ).start()

    def stop(self) -> None:
        self._stop.set()
        self.running = False

    def exposition(self) -> tuple[bytes, str]:
        """The scrape body and its content type (this process's tallies flushed first)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self._snapshot)
        return generate_latest(registry), CONTENT_TYPE_LATEST
