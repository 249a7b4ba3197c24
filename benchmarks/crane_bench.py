"""crane_fedora vs nginx on the same requests, plus metadata load/reload cost.

Run: ``python -m benchmarks.crane_bench`` (needs Debian ``wrk``, ``nginx``, ``taskset`` and
gunicorn in the venv; granian is measured too when installed). Everything runs on loopback with
free ports; the server under test is pinned to CPU 0 and wrk to the other CPUs. Prints a
markdown table. Options: ``--duration`` seconds per row (default 5), ``--repos``/``--tags``
(default 10,000 x 100), ``--skip-servers``/``--skip-load``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MASTER = "https://dl.example.org/pub/containers/"
MIRROR = "https://download.example.org/pub/containers/"
ROOT = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def repo_doc(name: str, ntags: int) -> dict:
    """A realistic repository: an OCI index over amd64/arm64/ppc64le images, ``ntags`` tags."""
    manifests: dict[str, dict] = {}
    blobs: dict[str, dict] = {}
    children = []
    for arch in ("amd64", "arm64", "ppc64le"):
        cfg, layer = f"{name}-{arch}-config".encode(), f"{name}-{arch}-layer".encode()
        blobs[_sha(cfg)] = {"size": 1469, "published": 1_700_000_000}
        blobs[_sha(layer)] = {"size": 2_479_000, "published": 1_700_000_000}
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _sha(cfg),
                    "size": 1469,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": _sha(layer),
                        "size": 2_479_000,
                    }
                ],
            },
            indent=3,
        )
        d = _sha(body.encode())
        manifests[d] = {
            "mediaType": OCI_MANIFEST,
            "size": len(body),
            "body": body,
            "blobs": [_sha(cfg), _sha(layer)],
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
    index = _sha(body.encode())
    manifests[index] = {"mediaType": OCI_INDEX, "size": len(body), "body": body, "manifests": children}
    tags = {"latest": index}
    for i in range(ntags - 1):
        tags[f"{38 + i // 20}.{i % 20}"] = index
    return {
        "type": "fedora-mirror",
        "version": 5,
        "repo-registry-id": name,
        "repository": name,
        "protected": False,
        "urls": {"master": MASTER, "mirror": MIRROR},
        "tags": tags,
        "manifests": manifests,
        "blobs": blobs,
        "export": {"id": None, "source": "bench", "exported": ""},
    }


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


@contextlib.contextmanager
def running(cmd: list[str], port: int, log: Path, env: dict | None = None) -> Iterator[None]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_port(port, 120)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, method: str, duration: int, conns: int, work: Path) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, non-2xx/3xx count."""
    script = work / f"{method}.lua"
    script.write_text(f'wrk.method = "{method}"\n')
    cpus = os.cpu_count() or 1
    pin = ["taskset", "-c", f"1-{cpus - 1}"] if cpus > 1 else []
    out = subprocess.run(
        [*pin, "wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, pct("50"), pct("99"), int(bad.group(1)) if bad else 0


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/ct; proxy_temp_path {work}/pt; fastcgi_temp_path {work}/ft;
  uwsgi_temp_path {work}/ut; scgi_temp_path {work}/st;
  server {{
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


def bench_servers(doc: dict, data_dir: Path, work: Path, duration: int, conns: int) -> list[dict]:
    name = doc["repo-registry-id"]
    index = doc["tags"]["latest"]
    blob = next(iter(doc["blobs"]))
    hexpart = blob.split(":")[1]
    location = f"{MIRROR}blobs/sha256/{hexpart[:2]}/{hexpart}"
    (work / "manifest.json").write_bytes(doc["manifests"][index]["body"].encode())
    (work / "tags.json").write_text(json.dumps({"name": name, "tags": sorted(doc["tags"])}))
    conf = work / "crane.conf"
    conf.write_text(f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 60\n")
    env = {**os.environ, "CRANE_CONFIG_PATH": str(conf), "PYTHONPATH": str(ROOT)}
    requests = [
        ("manifest GET", "GET", f"/v2/{name}/manifests/latest"),
        ("manifest HEAD", "HEAD", f"/v2/{name}/manifests/latest"),
        ("blob redirect", "GET", f"/v2/{name}/blobs/{blob}"),
        ("tags/list", "GET", f"/v2/{name}/tags/list"),
    ]
    venv_bin = Path(sys.executable).parent
    servers: list[tuple[str, list[str], int]] = []
    port = free_port()
    nconf = work / "nginx.conf"
    nconf.write_text(
        NGINX_CONF.format(
            work=work, port=port, name=name, mtype=OCI_INDEX, digest=index, blob=blob, location=location
        )
    )
    servers.append(("nginx", ["taskset", "-c", "0", "nginx", "-p", str(work), "-c", str(nconf)], port))
    port = free_port()
    servers.append(
        (
            "gunicorn gthread",
            [
                "taskset",
                "-c",
                "0",
                str(venv_bin / "gunicorn"),
                "-w",
                "1",
                "-k",
                "gthread",
                "--threads",
                "8",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "crane_fedora.wsgi:application",
            ],
            port,
        )
    )
    port = free_port()
    servers.append(
        (
            "gunicorn sync",
            [
                "taskset",
                "-c",
                "0",
                str(venv_bin / "gunicorn"),
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "crane_fedora.wsgi:application",
            ],
            port,
        )
    )
    if (venv_bin / "granian").exists():
        port = free_port()
        servers.append(
            (
                "granian wsgi",
                [
                    "taskset",
                    "-c",
                    "0",
                    str(venv_bin / "granian"),
                    "--interface",
                    "wsgi",
                    "--workers",
                    "1",
                    "--blocking-threads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "crane_fedora.wsgi:application",
                ],
                port,
            )
        )
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
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET, str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    for tool in ("wrk", "nginx", "taskset", "curl"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="crane-bench-"))
    try:
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
            print(f"wrk -t2 -c{args.connections} -d{args.duration}s, server pinned to CPU 0, keep-alive\n")
            print("| server | request | status | req/s | p50 ms | p99 ms | ratio to nginx | non-2xx/3xx |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                ratio = r["rps"] / nginx[r["request"]] if nginx.get(r["request"]) else float("nan")
                print(
                    f"| {r['server']} | {r['request']} | {r['status']} | {r['rps']:.0f} | {r['p50']:.2f} | "
                    f"{r['p99']:.2f} | {ratio:.2f} | {r['bad']} |"
                )
    finally:
        if args.keep:
            print(f"\nwork directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
