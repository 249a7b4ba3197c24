"""Manifest GET latency while crane reloads a 30 MB metadata file (issue 13 item 7).

Run: ``python -m benchmarks.reload_bench`` (needs gunicorn in the venv; ``taskset`` if present).
crane_fedora runs under gunicorn (one gthread worker, 8 threads, pinned to CPU 0, polling every
second); a client (4 threads, keep-alive, 12.5 requests/s each on a fixed schedule, on the other
CPUs) GETs a small repository's manifest while this script rewrites a ~30 MB metadata file of
another repository every 2 s, so the worker's poll thread keeps re-parsing it. Rows: no reload;
reloads with the parser before the fix (``json.loads``, ``benchmarks.reload_oneshot``); reloads
with ``crane_fedora.metadata.jsonsteps`` (ours). Prints a markdown table; ``--duration`` seconds
per row and round (default 20), ``--rounds`` (default 3; the cases are interleaved and the
round with the median p99 is shown), ``--size`` MB of the big file (default 30).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import (
    MASTER,
    MIRROR,
    OCI_MANIFEST,
    SERVER_PIN,
    crane_env,
    free_port,
    gunicorn_cmd,
    image_manifest,
    metadata_doc,
    running,
    sha,
)
from benchmarks.crane_bench import repo_doc

SMALL = "bench/small"
BIG = "bench/big"


def big_doc(target_bytes: int) -> dict:
    """A valid native file of about ``target_bytes``: many distinct images, one tag each."""
    manifests: dict[str, dict] = {}
    blobs: dict[str, dict] = {}
    tags: dict[str, str] = {}
    i = 0
    size = 0
    while size < target_bytes:
        cfg, layers = sha(f"cfg{i}".encode()), [sha(f"layer{i}-{n}".encode()) for n in range(4)]
        annotations = {"org.opencontainers.image.version": f"{i}"}
        body = image_manifest(cfg, 1469, layers, 2_479_000, annotations)
        digest = sha(body.encode())
        manifests[digest] = {
            "mediaType": OCI_MANIFEST,
            "size": len(body),
            "body": body,
            "blobs": [cfg, *layers],
        }
        for d in (cfg, *layers):
            blobs[d] = {"size": 2_479_000, "published": 1_700_000_000}
        tags[f"v{i}"] = digest
        size += len(json.dumps(manifests[digest])) + 5 * 100 + 80
        i += 1
    export = {"id": "0", "source": "bench", "exported": "2026-12-02T00:00:00Z"}
    return metadata_doc(BIG, 6, {"master": MASTER, "mirror": MIRROR}, tags, manifests, blobs, export)


class Rewriter(threading.Thread):
    """Replaces the big file every ``period`` s (temp + rename) with alternating content."""

    def __init__(self, path: Path, versions: list[bytes], period: float) -> None:
        super().__init__(daemon=True)
        self.path, self.versions, self.period = path, versions, period
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.period):
            n += 1
            tmp = self.path.with_name(".big.json.tmp")
            tmp.write_bytes(self.versions[n % len(self.versions)])
            os.replace(tmp, self.path)


def load(port: int, path: str, duration: float, threads: int = 4, rate: float = 12.5) -> list[float]:
    """Latencies (ms) of keep-alive GETs from ``threads`` clients, each sending ``rate`` per second
    on a fixed schedule for ``duration`` seconds.

    Open loop: a request's latency counts from when it was due, not from when a stalled client
    got round to sending it, so a stall shows in every request it delays (a closed-loop client
    would send one request per stall and hide it in the percentiles).
    """
    out: list[list[float]] = [[] for _ in range(threads)]
    interval = 1.0 / rate

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        lat = out[k]
        due = time.perf_counter() + k * interval / threads
        end = due + duration
        while due < end:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            lat.append((time.perf_counter() - due) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status}")
            due += interval
        conn.close()

    ts = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return [x for lat in out for x in lat]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def row(
    label: str, app: str, work: Path, data_dir: Path, reload: bool, duration: float, versions: list[bytes]
) -> dict:
    port = free_port()
    log = work / f"{label.split()[0]}-{port}.log"
    env = crane_env(work, data_dir, 1)
    pin = SERVER_PIN if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    cmd = gunicorn_cmd(port, pin, app=app)
    (data_dir / "bench" / "big.json").write_bytes(versions[0])
    with running(cmd, port, log, env):
        path = f"/v2/{SMALL}/manifests/latest"
        # The master listens before the worker has loaded both files (seconds for the big one):
        # wait for one answer, then warm up, so that no row measures the initial load.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()
        load(port, path, 2)
        rewriter = Rewriter(data_dir / "bench" / "big.json", versions, 2.0) if reload else None
        if rewriter:
            rewriter.start()
        try:
            lat = load(port, path, duration)
        finally:
            if rewriter:
                rewriter.stop.set()
                rewriter.join()
    reloads = [float(m) for m in re.findall(r"metadata reloaded \(poll\) in ([\d.]+) ms", log.read_text())]
    return {
        "label": label,
        "n": len(lat),
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": max(lat),
        "reloads": len(reloads),
        "parse": sorted(reloads)[len(reloads) // 2] if reloads else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--size", type=float, default=30, help="MB of the big metadata file")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the median round (by p99) is shown")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    cases = [
        ("no reload", "crane_fedora.wsgi:application", False),
        ("reload, json.loads (before)", "benchmarks.reload_oneshot:application", True),
        ("reload, jsonsteps (ours)", "crane_fedora.wsgi:application", True),
    ]
    results: dict[str, list[dict]] = {label: [] for label, _app, _r in cases}
    with tempfile.TemporaryDirectory(prefix="reload-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "metadata"
        (data_dir / "bench").mkdir(parents=True)
        small = repo_doc(SMALL, 5)
        (data_dir / "bench" / "small.json").write_text(json.dumps(small))
        doc = big_doc(int(args.size * 1e6))
        versions = []
        for n in range(2):
            doc["export"]["id"] = str(n)
            versions.append(json.dumps(doc).encode())
        mb = len(versions[0]) / 1e6
        print(f"big file: {mb:.1f} MB, {len(doc['manifests'])} manifests", file=sys.stderr)
        # Rounds, the cases interleaved: on a shared machine the load of the moment moves every
        # number; interleaving gives each case the same mix, and the median round is reported.
        for n in range(args.rounds):
            for label, app, reload in cases:
                print(f"round {n + 1}: {label}", file=sys.stderr, flush=True)
                results[label].append(row(label, app, work, data_dir, reload, args.duration, versions))
    rows = []
    for label, _app, _reload in cases:
        runs = sorted(results[label], key=lambda r: r["p99"])
        rows.append(runs[len(runs) // 2])
    print(
        f"Manifest GETs of a small repository (4 keep-alive clients, 12.5 requests/s each on a fixed "
        f"schedule, latency counted from when each request was due; {args.duration:.0f} s per row, median "
        f"of {args.rounds} interleaved rounds by p99) while "
        f"the poll thread of the same gunicorn gthread worker re-parses a {mb:.1f} MB metadata file "
        "about every 2 s. Latencies in ms; parse = median reload time logged by crane.\n"
    )
    print("| case | requests | p50 | p99 | max | reloads | parse ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['n']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | {r['reloads']} "
            f"| {r['parse']:.0f} |"
        )
    before, ours = rows[1], rows[2]
    print(
        f"\np99 during reloads: json.loads / ours = {before['p99'] / ours['p99']:.1f}x; "
        f"max: {before['max'] / ours['max']:.1f}x; "
        f"ours vs no reload p99: {ours['p99'] / rows[0]['p99']:.1f}x."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
