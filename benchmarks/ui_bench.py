"""The browsable pages with 10,000 repositories: server time per page and page weight.

Run: ``python -m benchmarks.ui_bench [--repos N] [--tags N] [--requests N]``. Builds the same
dataset as ``crane_bench`` (an OCI index over three images per repository), loads it with
``create_app`` and calls the WSGI app in-process, so the numbers are server time only (Flask,
routing, summary look-up, filtering, Jinja rendering, ETag), no network. The reference is the
registry API answering the same amount of data in JSON (``/v2/_catalog?n=<page size>``,
``tags/list``) through the same app. Prints a markdown table; targets from issue 12.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.crane_bench import make_dataset, repo_doc
from tests.harness.wsgi import wsgi_environ

TARGET_MS = 20.0
TARGET_KB = 100.0


def call(app: Callable, path: str, query: str = "", headers: dict[str, str] | None = None) -> tuple:
    """(status, headers, body, seconds) of one request through the whole WSGI stack."""
    seen: dict = {}

    def start_response(status: str, hdrs: list, exc_info: object = None) -> None:
        seen["status"], seen["headers"] = status, dict(hdrs)

    t, cpu = time.perf_counter(), time.thread_time()
    result = app(wsgi_environ("GET", path, query, headers, errors=sys.stderr), start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    took = time.perf_counter() - t
    seen["cpu"] = time.thread_time() - cpu
    return int(seen["status"][:3]), seen["headers"] | {"_cpu": seen["cpu"]}, body, took


def timed(
    app: Callable,
    path: str,
    query: str,
    n: int,
    headers: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
) -> dict:
    samples, cpu = [], []
    status = body = None
    for _ in range(n):
        if before is not None:
            before()
        status, hdrs, body, took = call(app, path, query, headers)
        samples.append(took * 1000)
        cpu.append(hdrs["_cpu"] * 1000)
    samples.sort()
    return {
        "status": status,
        "bytes": len(body or b""),
        "gzip": len(gzip.compress(body or b"", 6)),
        "p50": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95) - 1],
        "min": samples[0],
        "cpu": statistics.median(cpu),
        "cpu95": sorted(cpu)[int(len(cpu) * 0.95) - 1],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--requests", type=int, default=300, help="timed requests per row")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    from crane_fedora.app import create_app
    from crane_fedora.config import parse_config

    work = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    try:
        data_dir = work / "metadata"
        make_dataset(data_dir, args.repos, args.tags)
        cfg = parse_config(f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 0\n")
        t = time.perf_counter()
        app = create_app(cfg)
        load_s = time.perf_counter() - t
        wsgi = app
        store = app.extensions["crane_fedora"].store
        page = cfg.ui_page_size
        target = f"fedora/r{args.repos // 2:05d}"

        from crane_fedora.ui.summary import SummaryCache

        t = time.perf_counter()
        SummaryCache().catalog(store.index)  # what create_app and every background reload do once
        summarise_s = time.perf_counter() - t
        _s, _h, _b, cold = call(wsgi, "/")  # compiles the template, renders the page
        # a reload that changed one file (the poller's path): parse it, summarise that repository
        reloads, firsts = [], []
        for i in range(5):
            path = data_dir / "fedora" / "r00001.json"
            doc = repo_doc("fedora/r00001", args.tags)
            doc["tags"][f"extra{i}"] = doc["tags"]["latest"]
            tmp = path.with_name(".r00001.json.tmp")
            tmp.write_text(json.dumps(doc, sort_keys=True))
            os.replace(tmp, path)
            t = time.perf_counter()
            assert store.refresh()  # what reload() does first: scan, parse, swap
            t2 = time.perf_counter()
            for hook in store.on_reload:  # then its hooks: the UI summarises the new snapshot
                hook(store.index)
            reloads.append(((t2 - t) * 1000, (time.perf_counter() - t2) * 1000))
            firsts.append(call(wsgi, "/")[3] * 1000)
        _s, _h, _b, first_repo = call(wsgi, f"/r/{target}")  # first view builds its tag table

        n = args.requests
        etag = call(wsgi, "/")[1]["ETag"]
        ui = app.extensions["crane_fedora_ui"]
        drop = lambda: ui.cache.catalog(store.index).pages.clear()  # noqa: E731
        rows = [
            ("catalog, first page (`/`), rendered: not cached yet", timed(wsgi, "/", "", n, before=drop)),
            ("catalog, first page (`/`), cached for this snapshot", timed(wsgi, "/", "", n)),
            (
                "catalog, search `r0500`, rendered: not cached yet",
                timed(wsgi, "/", "q=r0500", n, before=drop),
            ),
            ("catalog, search `r0500`, cached", timed(wsgi, "/", "q=r0500", n)),
            ("catalog, search matching every name, page 50, cached", timed(wsgi, "/", "q=fedora&page=50", n)),
            ("catalog, 304 revalidation (If-None-Match)", timed(wsgi, "/", "", n, {"If-None-Match": etag})),
            (
                f"repository page ({args.tags} tags), rendered: not cached yet",
                timed(wsgi, f"/r/{target}", "", n, before=drop),
            ),
            (f"repository page ({args.tags} tags), cached", timed(wsgi, f"/r/{target}", "", n)),
            ("help page", timed(wsgi, "/help", "", n)),
            (f"reference: `/v2/_catalog?n={page}` (JSON)", timed(wsgi, "/v2/_catalog", f"n={page}", n)),
            ("reference: `tags/list` (JSON)", timed(wsgi, f"/v2/{target}/tags/list", "", n)),
        ]
        assets = sum(len(a.body) for a in ui.assets.values())
        ref = rows[-2][1]["p50"]
        first = rows[0][1]  # the honest one: the render a new snapshot's first visitor pays for
        print(
            f"dataset: {args.repos} repositories x {args.tags} tags; create_app {load_s:.2f} s; "
            f"{n} requests per row, in-process WSGI calls (server time, no network); page size {page}\n"
        )
        print("| metric | value | target |\n|---|---|---|")
        print(
            f"| summarise all {args.repos} repositories (once per process at startup, inside create_app) "
            f"| {summarise_s * 1000:.0f} ms | |"
        )
        print(f"| first `/` after startup (template compiled, page rendered) | {cold * 1000:.1f} ms | |")
        print(
            "| background reload after one changed file: scan, parse, swap (crane), median of 5 "
            f"| {statistics.median(r[0] for r in reloads):.1f} ms | |"
        )
        print(
            "| then the home page's share: re-summarise that repository, reuse the others, median of 5 "
            f"| {statistics.median(r[1] for r in reloads):.1f} ms | |"
        )
        print(f"| first `/` after that reload, median of 5 | {statistics.median(firsts):.1f} ms | |")
        print(f"| first view of a repository page (builds its tag table) | {first_repo * 1000:.1f} ms | |")
        print(f"| static assets (CSS, JS, icon; cached for a year) | {assets / 1000:.1f} kB | |\n")
        print(
            "| request | status | p50 ms | p95 ms | min ms | CPU p50 ms | CPU p95 ms "
            "| p50 ratio to JSON catalog | bytes | gzip bytes |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, r in rows:
            print(
                f"| {name} | {r['status']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['min']:.2f} | "
                f"{r['cpu']:.2f} | {r['cpu95']:.2f} | {r['p50'] / ref:.1f} | {r['bytes']} | {r['gzip']} |"
            )
        print(f"\nLoad average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.")
        # Wall time on a shared 2-CPU machine includes waiting for a CPU (load average above);
        # the server's own time is its CPU time, so the target is judged on that, wall shown too.
        ok_ms, ok_kb = first["cpu95"] <= TARGET_MS, first["bytes"] / 1000 < TARGET_KB
        print(
            f"\nTargets: first catalog page, not cached, p95 {first['cpu95']:.2f} ms CPU "
            f"(wall p95 {first['p95']:.2f} ms, p50 {first['p50']:.2f} ms) <= {TARGET_MS:.0f} ms: "
            f"{'met' if ok_ms else 'MISSED'}; page weight {first['bytes'] / 1000:.1f} kB uncompressed, "
            f"{first['gzip'] / 1000:.1f} kB gzipped (< {TARGET_KB:.0f} kB: {'met' if ok_kb else 'MISSED'})."
        )
        return 0 if ok_ms and ok_kb else 1
    finally:
        if args.keep:
            print(f"\nwork directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
