"""Prometheus metrics for operators: ``GET /metrics`` in the text exposition format.

What is counted: requests by endpoint and status, blob redirects by target (master or mirror),
metadata reloads (duration), and, read from the current snapshot at scrape time, its age, its
size and the metadata files rejected. Labels never carry client input (no repository names, no
paths), so the number of series is fixed.

Why ``prometheus_client``'s multi-process mode: gunicorn and granian answer with several worker
processes, each with its own counters; with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory,
cleared before each server start, shared by the workers), every process writes its counters there
and a scrape from any worker adds them all up. Without it each process reports only its own.

Why the per-request work is a pre-bound ``inc``: the registry answers a manifest GET in a few
microseconds, so the request path must not pay for ``labels()`` (a lock and a tuple look-up);
benchmarks/hotpath_bench.py measures what is left against the 5% budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from crane_fedora.metadata.store import MetadataStore

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Endpoint labels (a fixed set: never built from the path).
V2_ENDPOINTS = {"manifests": "manifest", "blobs": "blob", "tags": "tags"}


def endpoint_of(path: str) -> str:
    """The endpoint label of a request path, from its shape only."""
    if path[:3] == "/v2" and (len(path) == 3 or path[3] == "/"):
        if len(path) <= 4:
            return "base"
        if path == "/v2/_catalog":
            return "catalog"
        parts = path.rsplit("/", 2)
        if len(parts) == 3:
            return V2_ENDPOINTS.get(parts[1], "v2_other")
        return "v2_other"
    if path == "/metrics":
        return "metrics"
    if path == "/healthz":
        return "healthz"
    return "other"


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
        self._request_inc: dict[tuple[str, str], Callable[[], None]] = {}
        self._redirect_inc = {t: self.redirects.labels(t).inc for t in ("master", "mirror")}
        store.on_reload = self.reloads.observe

    def count_request(self, endpoint: str, status: str) -> None:
        """Count one answered request; ``status`` is the WSGI status line (``"200 OK"``)."""
        key = (endpoint, status[:3])
        inc = self._request_inc.get(key)
        if inc is None:
            inc = self._request_inc[key] = self.requests.labels(*key).inc
        inc()

    def count_redirect(self, target: str) -> None:
        self._redirect_inc[target]()

    def exposition(self) -> tuple[bytes, str]:
        """The scrape body and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(self._snapshot)
        return generate_latest(registry), CONTENT_TYPE_LATEST
