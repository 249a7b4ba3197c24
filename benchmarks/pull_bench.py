"""skopeo pulling big images through crane_fedora + nginx vs straight from docker-registry (issue 13).

Same machine, same image bytes, both over TLS on loopback:

* **reference**: ``skopeo copy docker://<docker-registry 2.8>/bench/<img>:latest dir:…``;
* **ours**: the same image exported into a mirror tree (``fedora-mirror export``), served by the
  test harness's stack — crane_fedora under gunicorn (TLS) answering manifests and redirecting
  each blob to nginx (TLS) serving the tree — ``skopeo copy docker://<crane>/bench/<img>:latest``;
* the same stack with crane under gunicorn ``-k gthread`` (keep-alive; what docs/crane.md
  recommends), and optionally (``--nginx-auto``) with nginx ``worker_processes auto``.

Besides the wall time, skopeo's own CPU time (user + system, from ``wait4``) is reported: it
hardly depends on the other load on the machine and shows whether a path costs the client more.
Observed: skopeo 1.9 fetched the layers for a ``dir:`` destination one after the other (nginx's
per-blob request times add up to the pull time), so per-blob costs add up rather than overlap.

Images: 8 layers x 64 MiB (512 MiB) and 16 x 64 MiB (1 GiB) of random (incompressible) bytes.
The machine is shared (other test runs use the same 2 cores), so the variants run in several
interleaved rounds (A, B, C, A, B, C, …) and the table reports medians and min-max; ratios are
medians divided by the registry's median.

Usage: ``python -m benchmarks.pull_bench [--rounds 5] [--layers 8,16] [--layer-mib 64]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness.crane import CraneStack  # noqa: E402
from tests.harness.registry import Registry  # noqa: E402
from tests.harness.tls import TLSFiles  # noqa: E402


def log(msg: str) -> None:
    print(f"[pull-bench] {msg}", file=sys.stderr, flush=True)


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def make_layout(layout: Path, layers: int, layer_mib: int, seed: int) -> None:
    """An OCI layout with one image of ``layers`` random layers (tag ``latest``)."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descs, diff_ids = [], []
    rng = __import__("random").Random(seed)
    for _ in range(layers):
        digest, size = _write_blob(layout, rng.randbytes(layer_mib << 20))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        diff_ids.append(digest)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }
    cdigest, csize = _write_blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": descs,
    }
    mdigest, msize = _write_blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdigest,
                "size": msize,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def pull(host: str, name: str, dest: Path) -> tuple[float, float]:
    """(wall seconds, skopeo's user+system CPU seconds) of one ``skopeo copy`` to a fresh ``dir:``.

    The CPU time is the client's own work (TLS, digests, writes); unlike the wall time it hardly
    depends on what else runs on the machine, so it tells whether a path costs the client more.
    """
    shutil.rmtree(dest, ignore_errors=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{host}/{name}:latest", f"dir:{dest}"],
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo copy from {host} failed ({proc.returncode}): {err[-2000:]}")
    shutil.rmtree(dest, ignore_errors=True)
    return took, usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def stack(
    work: Path, tls: TLSFiles, nginx_workers: str | None, images: dict, worker_class: str | None = None
) -> Iterator[CraneStack]:
    """The harness's crane + nginx stack over a tree holding ``images`` (exported before crane
    starts, so every gunicorn worker loads them at boot); ``nginx_workers`` overrides nginx's
    worker_processes."""
    s = CraneStack(work, work / "tree", work / "meta", tls=tls)
    if nginx_workers is not None:
        s.master.worker_processes = nginx_workers
    if worker_class is not None:
        s.crane.worker_class = worker_class
        s.crane.threads = 8
    for layout, name in images.values():
        run([str(Path(sys.executable).parent / "fedora-mirror"), "export", str(layout), "--name", name,
             "--root", str(s.tree), "--metadata-dir", str(s.metadata_dir), "--master-url", s.master_url,
             "-q"])  # fmt: skip
    with s:
        yield s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", default="8,16", help="comma-separated layer counts (one image each)")
    ap.add_argument("--layer-mib", type=int, default=64)
    ap.add_argument("--nginx-auto", action="store_true", help="also nginx with worker_processes auto")
    args = ap.parse_args(argv)
    if not shutil.which("skopeo") or not shutil.which("docker-registry") or not shutil.which("nginx"):
        print("needs skopeo, docker-registry and nginx (see Makefile DEB_PACKAGES)", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.layers.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="pull-bench-"))
    try:
        tls = TLSFiles.create(work / "tls")
        images = {}
        for n in counts:
            layout = work / f"layout-{n}"
            log(f"building {n} x {args.layer_mib} MiB image")
            make_layout(layout, n, args.layer_mib, seed=n)
            images[n] = (layout, f"bench/img{n}")
        registry = Registry(work / "registry", tls=tls)
        registry.start()
        try:
            for layout, name in images.values():
                log(f"pushing {name} to docker-registry")
                run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:latest",
                     f"docker://{registry.host}/{name}:latest"])  # fmt: skip
            with contextlib.ExitStack() as es:
                variants: dict[str, str] = {"docker-registry 2.8": registry.host}
                crane_stacks: dict[str, tuple[str | None, str | None]] = {
                    "crane (gunicorn sync, as in the tests) + nginx": (None, None),
                    "crane (gunicorn gthread, as in docs/crane.md) + nginx": (None, "gthread"),
                }
                if args.nginx_auto:
                    crane_stacks["crane (gunicorn sync) + nginx worker_processes auto"] = ("auto", None)
                for label, (workers, wclass) in crane_stacks.items():
                    s = es.enter_context(stack(work / f"stack-{len(variants)}", tls, workers, images, wclass))
                    variants[label] = s.crane_host
                # The pulled copy goes to tmpfs when there is one: writing 1 GiB to the shared disk
                # per pull measured the other engineers' I/O more than the servers.
                shm = Path("/dev/shm")
                dest = (
                    Path(tempfile.mkdtemp(prefix="pull-bench-", dir=shm)) if shm.is_dir() else work
                ) / "out"
                es.callback(shutil.rmtree, dest.parent, True)
                times: dict[tuple[str, int], list[tuple[float, float]]] = {
                    (v, n): [] for v in variants for n in counts
                }
                for host in variants.values():  # warm-up: page cache
                    for _l, name in images.values():
                        pull(host, name, dest)
                for r in range(args.rounds):
                    for n, (_l, name) in images.items():
                        for label, host in variants.items():
                            times[(label, n)].append(pull(host, name, dest))
                    log(f"round {r + 1}/{args.rounds} done")
        finally:
            registry.stop()
        print(
            f"skopeo {run(['skopeo', '--version']).stdout.split()[-1]} `copy docker://… dir:…`, TLS on "
            f"loopback, {args.layer_mib} MiB random layers; {args.rounds} interleaved rounds after one "
            "warm-up pull each, medians (min-max) in seconds; the machine is shared with other "
            "engineers' test runs, hence medians.\n"
        )
        print(
            "| image | source | wall median s | min-max s | MB/s | wall ratio | skopeo CPU median s | "
            "CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for n in counts:
            ref = statistics.median(t for t, _c in times[("docker-registry 2.8", n)])
            ref_cpu = statistics.median(c for _t, c in times[("docker-registry 2.8", n)])
            size_mb = n * args.layer_mib * 1.048576
            for label in variants:
                walls = [t for t, _c in times[(label, n)]]
                cpus = [c for _t, c in times[(label, n)]]
                med, cpu = statistics.median(walls), statistics.median(cpus)
                print(
                    f"| {n} x {args.layer_mib} MiB | {label} | {med:.2f} | "
                    f"{min(walls):.2f}-{max(walls):.2f} | {size_mb / med:.0f} | {med / ref:.2f} | "
                    f"{cpu:.2f} | {cpu / ref_cpu:.2f} |"
                )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
