"""What the server benchmarks share: synthetic metadata, servers started around a block, wrk runs.

One copy, so that every benchmark builds its images, pins its servers and reads wrk's output the
same way and the tables in docs/benchmarks.md stay comparable with each other.
"""

from __future__ import annotations

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
CRANE_WSGI = "crane_fedora.wsgi:application"
SERVER_PIN = ["taskset", "-c", "0"]  # the server under test on CPU 0, clients on the others

# The head of every nginx configuration the benchmarks run (work dir, one worker, no logs).
NGINX_HEAD = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/ct; proxy_temp_path {work}/pt; fastcgi_temp_path {work}/ft;
  uwsgi_temp_path {work}/ut; scgi_temp_path {work}/st;
"""


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(
    config: str, config_size: int, layers: list[str], layer_size: int, annotations: dict | None = None
) -> str:
    """An OCI image manifest body (indented as registries write it) over the given digests."""
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": layer_size}
            for d in layers
        ],
    }
    if annotations is not None:
        doc["annotations"] = annotations
    return json.dumps(doc, indent=3)


def metadata_doc(
    name: str, version: int, urls: dict, tags: dict, manifests: dict, blobs: dict, export: dict
) -> dict:
    """A native (fedora-mirror) metadata file for repository ``name``, public."""
    return {
        "type": "fedora-mirror",
        "version": version,
        "repo-registry-id": name,
        "repository": name,
        "protected": False,
        "urls": urls,
        "tags": tags,
        "manifests": manifests,
        "blobs": blobs,
        "export": export,
    }


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


@contextlib.contextmanager
def work_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory nginx's workers (user nobody) can read; removed afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    try:
        yield work
    finally:
        if keep:
            print(f"\nwork directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def crane_env(
    work: Path, data_dir: Path, polling_interval: int, extra: str = "", name: str = "crane"
) -> dict:
    """The environment of a crane_fedora server over ``data_dir`` (config ``work/<name>.conf``,
    ``extra`` appended to it)."""
    conf = work / f"{name}.conf"
    conf.write_text(
        f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = {polling_interval}\n{extra}"
    )
    return {**os.environ, "CRANE_CONFIG_PATH": str(conf), "PYTHONPATH": str(ROOT)}


def gunicorn_cmd(port: int, pin: list[str], threads: int | None = 8, app: str = CRANE_WSGI) -> list[str]:
    """One gunicorn worker: gthread with ``threads`` threads, or sync when ``threads`` is None."""
    worker = ["-k", "gthread", "--threads", str(threads)] if threads else []
    return [
        *pin,
        str(Path(sys.executable).parent / "gunicorn"),
        "-w",
        "1",
        *worker,
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]


def granian_cmd(port: int) -> list[str]:
    """One granian WSGI worker with one blocking thread, pinned to CPU 0."""
    return [
        *SERVER_PIN,
        str(Path(sys.executable).parent / "granian"),
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
        CRANE_WSGI,
    ]


def missing_tools(tools: tuple[str, ...] = ("wrk", "nginx", "taskset", "curl")) -> int:
    """2 (and a line on stderr) when one of ``tools`` is not installed, else 0."""
    for tool in tools:
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    return 0


def client_pin() -> list[str]:
    """taskset onto every CPU but the server's 0 (nothing on a single-CPU machine)."""
    cpus = os.cpu_count() or 1
    return ["taskset", "-c", f"1-{cpus - 1}"] if cpus > 1 else []


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, script: Path, duration: int, conns: int) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, non-2xx/3xx count of wrk running the Lua ``script`` against ``url``."""
    out = subprocess.run(
        [*client_pin(), "wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
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


def run_snippet(snippet: str, *args: str) -> dict:
    """Run ``snippet`` in a fresh interpreter (clean memory, real import times); its last line as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", snippet, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
