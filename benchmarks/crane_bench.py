"""crane_fedora vs nginx on the same requests, plus metadata load/reload cost.

Run: ``python -m benchmarks.crane_bench`` (needs Debian ``wrk``, ``nginx``, ``taskset`` and
gunicorn in the venv; granian is measured too when installed). Everything runs on loopback with
free ports; the server under test is pinned to CPU 0 and wrk to the other CPUs. Prints a
markdown table. Options: ``--duration`` seconds per row (default 5), ``--repos``/``--tags``
(default 10,000 x 100), ``--skip-servers``/``--skip-load``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    MASTER,
    MIRROR,
    NGINX_HEAD,
    OCI_INDEX,
    OCI_MANIFEST,
    SERVER_PIN,
    client_pin,
    crane_env,
    free_port,
    granian_cmd,
    gunicorn_cmd,
    image_manifest,
    metadata_doc,
    missing_tools,
    run_snippet,
    run_wrk,
    running,
    sha,
    work_dir,
)


def repo_doc(name: str, ntags: int) -> dict:
    """A realistic repository: an OCI index over amd64/arm64/ppc64le images, ``ntags`` tags."""
    manifests: dict[str, dict] = {}
    blobs: dict[str, dict] = {}
    children = []
    for arch in ("amd64", "arm64", "ppc64le"):
        cfg, layer = f"{name}-{arch}-config".encode(), f"{name}-{arch}-layer".encode()
        blobs[sha(cfg)] = {"size": 1469, "published": 1_700_000_000}
        blobs[sha(layer)] = {"size": 2_479_000, "published": 1_700_000_000}
        body = image_manifest(sha(cfg), 1469, [sha(layer)], 2_479_000)
        d = sha(body.encode())
        manifests[d] = {
            "mediaType": OCI_MANIFEST,
            "size": len(body),
            "body": body,
            "blobs": [sha(cfg), sha(layer)],
        }
        children.append(
            {
                "digest": d,
                "mediaType": OCI_MANIFEST,
                "size": len(body),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, indent=3)
    index = sha(body.encode())
    manifests[index] = {"mediaType": OCI_INDEX, "size": len(body), "body": body, "manifests": children}
    tags = {"latest": index}
    for i in range(ntags - 1):
        tags[f"{38 + i // 20}.{i % 20}"] = index
    export = {"id": None, "source": "bench", "exported": ""}
    return metadata_doc(name, 5, {"master": MASTER, "mirror": MIRROR}, tags, manifests, blobs, export)


def make_dataset(data_dir: Path, repos: int, tags: int) -> dict:
    """Write ``repos`` metadata files; return the first one's doc (the HTTP target)."""
    first = None
    for i in range(repos):
        name = f"fedora/r{i:05d}"
        doc = repo_doc(name, tags)
        path = data_dir / "fedora" / f"r{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, sort_keys=True))
        first = first or doc
    assert first is not None
    return first


def wrk(url: str, method: str, duration: int, conns: int, work: Path) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, non-2xx/3xx count."""
    script = work / f"{method}.lua"
    script.write_text(f'wrk.method = "{method}"\n')
    return run_wrk(url, script, duration, conns)


def curl_load(url: str, method: str, total: int, conns: int) -> tuple[float, float, float, int]:
    """HEAD load with curl's parallel mode: wrk 4.1 waits for a body after a HEAD and stalls."""
    pin = client_pin()
    flag = ["-I"] if method == "HEAD" else []
    started = time.perf_counter()
    out = subprocess.run(
        [
            *pin,
            "curl",
            "-s",
            "-Z",
            "--parallel-max",
            str(conns),
            *flag,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}\n",
            f"{url}?bench=[1-{total}]",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    elapsed = time.perf_counter() - started
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    times = sorted(float(t) * 1000 for _, t in lines)
    bad = sum(1 for code, _ in lines if not code.startswith(("2", "3")))
    if not times:
        return 0.0, float("nan"), float("nan"), total
    return len(times) / elapsed, times[len(times) // 2], times[int(len(times) * 0.99)], bad


NGINX_CONF = (
    NGINX_HEAD
    + """  server {{
    listen 127.0.0.1:{port};
    add_header Docker-Distribution-API-Version registry/2.0 always;
    location = /v2/{name}/manifests/latest {{
      default_type {mtype};
      add_header Docker-Content-Digest {digest} always;
      add_header Docker-Distribution-API-Version registry/2.0 always;
      alias {work}/manifest.json;
    }}
    location = /v2/{name}/blobs/{blob} {{ return 302 {location}; }}
    location = /v2/{name}/tags/list {{ default_type application/json; alias {work}/tags.json; }}
  }}
}}
"""
)


def bench_servers(doc: dict, data_dir: Path, work: Path, duration: int, conns: int) -> list[dict]:
    name = doc["repo-registry-id"]
    index = doc["tags"]["latest"]
    blob = next(iter(doc["blobs"]))
    hexpart = blob.split(":")[1]
    location = f"{MIRROR}blobs/sha256/{hexpart[:2]}/{hexpart}"
    (work / "manifest.json").write_bytes(doc["manifests"][index]["body"].encode())
    (work / "tags.json").write_text(json.dumps({"name": name, "tags": sorted(doc["tags"])}))
    env = crane_env(work, data_dir, 60)
    requests = [
        ("manifest GET", "GET", f"/v2/{name}/manifests/latest"),
        ("manifest HEAD", "HEAD", f"/v2/{name}/manifests/latest"),
        ("blob redirect", "GET", f"/v2/{name}/blobs/{blob}"),
        ("tags/list", "GET", f"/v2/{name}/tags/list"),
    ]
    servers: list[tuple[str, list[str], int]] = []
    port = free_port()
    nconf = work / "nginx.conf"
    nconf.write_text(
        NGINX_CONF.format(
            work=work, port=port, name=name, mtype=OCI_INDEX, digest=index, blob=blob, location=location
        )
    )
    servers.append(("nginx", [*SERVER_PIN, "nginx", "-p", str(work), "-c", str(nconf)], port))
    port = free_port()
    servers.append(("gunicorn gthread", gunicorn_cmd(port, SERVER_PIN), port))
    port = free_port()
    servers.append(("gunicorn sync", gunicorn_cmd(port, SERVER_PIN, threads=None), port))
    if (Path(sys.executable).parent / "granian").exists():
        port = free_port()
        servers.append(("granian wsgi", granian_cmd(port), port))
    rows = []
    for server, cmd, port in servers:
        with running(cmd, port, work / f"{server.replace(' ', '-')}.log", env):
            for label, method, path in requests:
                url = f"http://127.0.0.1:{port}{path}"
                check = subprocess.run(
                    [
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "-X",
                        method,
                        "-I" if method == "HEAD" else "-s",
                        url,
                    ],
                    capture_output=True,
                    text=True,
                )
                if method == "HEAD":
                    curl_load(url, method, 2000, conns)  # warm-up
                    rps, p50, p99, bad = curl_load(url, method, 20000, conns)
                else:
                    wrk(url, method, 1, conns, work)  # warm-up
                    rps, p50, p99, bad = wrk(url, method, duration, conns, work)
                rows.append(
                    {
                        "server": server,
                        "request": label,
                        "rps": rps,
                        "p50": p50,
                        "p99": p99,
                        "bad": bad,
                        "status": check.stdout.strip(),
                    }
                )
    return rows


LOAD_SNIPPET = """
import json, os, resource, statistics, sys, time
t0 = time.perf_counter()
from crane_fedora.app import create_app
from crane_fedora.config import parse_config
t1 = time.perf_counter()
app = create_app(parse_config(f"[general]\\ndata_dir = {sys.argv[1]}\\ndata_dir_polling_interval = 0\\n"))
load = time.perf_counter() - t1
store = app.extensions["crane_fedora"].store
rss = int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
reloads, scans, applies = [], [], []
for i in range(7):
    path = os.path.join(sys.argv[1], "fedora", f"r{i * 7:05d}.json")
    doc = json.load(open(path))
    doc["tags"][f"new-{i}"] = doc["tags"]["latest"]
    tmp = os.path.join(os.path.dirname(path), ".tmp")
    open(tmp, "w").write(json.dumps(doc, sort_keys=True))
    os.replace(tmp, path)
    t = time.perf_counter()
    changed = store.refresh()
    reloads.append(time.perf_counter() - t)
    assert changed and f"new-{i}" in store.index.repos[doc["repo-registry-id"]].tags
    t = time.perf_counter()
    store._scan()
    scans.append(time.perf_counter() - t)
ms = lambda xs: (min(xs) * 1000, statistics.median(xs) * 1000)
print(json.dumps({"repos": len(store.index.repos), "import_s": t1 - t0, "load_s": load, "rss_mb": rss,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "reload_ms": ms(reloads), "scan_ms": ms(scans)}))
"""


def bench_load(data_dir: Path) -> dict:
    return run_snippet(LOAD_SNIPPET, str(data_dir))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=10_000)
    ap.add_argument("--tags", type=int, default=100)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--skip-servers", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if missing_tools():
        return 2
    with work_dir("crane-bench-", args.keep) as work:
        data_dir = work / "metadata"
        t0 = time.perf_counter()
        doc = make_dataset(data_dir, args.repos, args.tags)
        gen = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in data_dir.rglob("*.json"))
        print(
            f"dataset: {args.repos} repos x {args.tags} tags, {size / 1e6:.0f} MB of JSON "
            f"(generated in {gen:.1f} s)\n"
        )
        if not args.skip_load:
            load = bench_load(data_dir)
            print("| metric | value | target |\n|---|---|---|")
            print(
                f"| load {load['repos']} repos (create_app; imports {load['import_s']:.2f} s extra) "
                f"| {load['load_s']:.2f} s | <= 2 s |"
            )
            print(
                f"| RSS after load | {load['rss_mb']:.0f} MB (peak {load['maxrss_mb']:.0f} MB) | <= 300 MB |"
            )
            print(
                f"| reload after one changed file (scan + parse + swap), min / median of 7 "
                f"| {load['reload_ms'][0]:.1f} / {load['reload_ms'][1]:.1f} ms | <= 50 ms |"
            )
            print(
                f"| of which: poll scan of all files, min / median "
                f"| {load['scan_ms'][0]:.1f} / {load['scan_ms'][1]:.1f} ms | |"
            )
            print(f"| load average during the run | {os.getloadavg()[0]:.2f} | |\n")
        if not args.skip_servers:
            rows = bench_servers(doc, data_dir, work, args.duration, args.connections)
            nginx = {r["request"]: r["rps"] for r in rows if r["server"] == "nginx"}
            print(
                f"GET: wrk -t2 -c{args.connections} -d{args.duration}s; HEAD: curl -Z --parallel-max "
                f"{args.connections}, 20,000 requests (wrk 4.1 stalls on HEAD; curl-side latencies, "
                "client-bound); "
                "server pinned to CPU 0, client on the other CPUs, keep-alive\n"
            )
            print("| server | request | status | req/s | p50 ms | p99 ms | ratio to nginx | non-2xx/3xx |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                ratio = r["rps"] / nginx[r["request"]] if nginx.get(r["request"]) else float("nan")
                print(
                    f"| {r['server']} | {r['request']} | {r['status']} | {r['rps']:.0f} | {r['p50']:.2f} | "
                    f"{r['p99']:.2f} | {ratio:.2f} | {r['bad']} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
