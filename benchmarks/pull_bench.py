"""skopeo pulling big images through crane_fedora + nginx vs straight from docker-registry (issue 13).

Same machine, **same image** (the manifest digest is checked to be identical from both sources
before anything is timed), both over TLS on loopback:

* **reference**: ``skopeo copy docker://<docker-registry 2.8>/bench/<img>:latest <dest>``;
* **ours**: the same image exported into a mirror tree (``fedora-mirror export``), served by the
  test harness's stack — crane_fedora under gunicorn (TLS) answering manifests and redirecting
  each blob to nginx (TLS) serving the tree — ``skopeo copy docker://<crane>/bench/<img>:latest``;
* the same stack with crane under gunicorn ``-k gthread`` (keep-alive; what docs/crane.md
  recommends), and optionally (``--nginx-auto``) with nginx ``worker_processes auto``.

Two destinations, because skopeo copies differently into them: ``dir:`` takes the layers one
after the other; ``oci:`` takes up to six at once (containers/image's parallel copy) and wants
compressed layers, so it gzips any uncompressed layer on the way.

**Why issue 13 saw 1.10x-1.5x** (the ``issue's setup`` rows reproduce it): its reference was not the same
image. An OCI layout with uncompressed (``tar``) layers pushed to docker-registry with a plain
``skopeo copy`` is gzipped on the way (a registry destination wants compressed layers), so the
registry served ``tar+gzip`` layers while crane served the layout's ``tar`` layers; skopeo then
had to gzip and digest a second time every layer it pulled through crane into ``oci:`` storage.
The images here have gzip layers (what build systems push) and are pushed with
``--preserve-digests``, so both sources serve the same bytes.

Besides the wall time, skopeo's own CPU time (user + system, from ``wait4``) is reported: it
hardly depends on the other load on the machine and shows whether a path costs the client more.

Images: 8 layers x 64 MiB (512 MiB) and 16 x 64 MiB (1 GiB) of random (incompressible) bytes.
The variants run in several interleaved rounds (A, B, C, A, B, C, …) and the table reports medians
and min-max; ratios are medians divided by the registry's median for the same image and
destination.

Usage: ``python -m benchmarks.pull_bench [--rounds 5] [--layers 8,16] [--dest dir,oci]
[--no-issue-setup] [--nginx-auto]``
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
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


REGISTRY = "docker-registry 2.8"


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def make_layout(layout: Path, layers: int, layer_mib: int, seed: int, *, compress: bool = True) -> None:
    """An OCI layout with one image of ``layers`` random layers (tag ``latest``).

    ``compress``: gzip layers (``tar+gzip``, what build systems push and what a registry holds);
    otherwise plain ``tar`` layers (the issue's setup).
    """
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descs, diff_ids = [], []
    rng = random.Random(seed)
    for _ in range(layers):
        raw = rng.randbytes(layer_mib << 20)
        diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        if compress:
            digest, size = _write_blob(layout, gzip.compress(raw, compresslevel=1, mtime=0))
            media_type = "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            digest, size = _write_blob(layout, raw)
            media_type = "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": media_type, "digest": digest, "size": size})
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


def manifest_digest(host: str, name: str) -> str:
    """The digest of the manifest ``host`` serves for ``name:latest`` (what skopeo would pull)."""
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{name}:latest"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def pull(host: str, name: str, dest: Path, transport: str = "dir") -> tuple[float, float]:
    """(wall seconds, skopeo's user+system CPU seconds) of one ``skopeo copy`` to a fresh
    ``dir:`` or ``oci:`` destination.

    The CPU time is the client's own work (TLS, digests, compression, writes); unlike the wall
    time it hardly depends on what else runs on the machine, so it tells whether a path costs
    the client more.
    """
    shutil.rmtree(dest, ignore_errors=True)
    target = f"oci:{dest}:latest" if transport == "oci" else f"dir:{dest}"
    start = time.monotonic()
    proc = subprocess.Popen(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{host}/{name}:latest", target],
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
    work: Path, tls: TLSFiles, nginx_workers: str | None, layouts: list[tuple[Path, str]],
    worker_class: str | None = None,
) -> Iterator[CraneStack]:  # fmt: skip
    """The harness's crane + nginx stack over a tree holding ``layouts`` ((OCI layout, name)
    pairs, exported before crane starts, so every gunicorn worker loads them at boot);
    ``nginx_workers`` overrides nginx's worker_processes."""
    s = CraneStack(work, work / "tree", work / "meta", tls=tls)
    if nginx_workers is not None:
        s.master.worker_processes = nginx_workers
    if worker_class is not None:
        s.crane.worker_class = worker_class
        s.crane.threads = 8
    for layout, name in layouts:
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
    ap.add_argument("--dest", default="dir,oci", help="comma-separated skopeo destinations: dir, oci")
    ap.add_argument(
        "--issue-setup", action=argparse.BooleanOptionalAction, default=True,
        help="also the issue's measurement (default on): tar layers, pushed to the registry "
        "without --preserve-digests (so gzipped there), pulled into oci:",
    )  # fmt: skip
    ap.add_argument("--nginx-auto", action="store_true", help="also nginx with worker_processes auto")
    args = ap.parse_args(argv)
    if not shutil.which("skopeo") or not shutil.which("docker-registry") or not shutil.which("nginx"):
        print("needs skopeo, docker-registry and nginx (see Makefile DEB_PACKAGES)", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.layers.split(",") if x.strip()]
    dests = [d.strip() for d in args.dest.split(",") if d.strip()]
    if not counts or not dests or set(dests) - {"dir", "oci"}:
        ap.error("--layers needs counts and --dest is a list of dir, oci")
    work = Path(tempfile.mkdtemp(prefix="pull-bench-"))
    try:
        tls = TLSFiles.create(work / "tls")
        # (image label, destination) -> [(source label, host, repository)], reference first.
        groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        same: dict[int, tuple[Path, str]] = {}
        issue: dict[int, tuple[Path, str]] = {}
        for n in counts:
            log(f"building {n} x {args.layer_mib} MiB image (gzip layers)")
            make_layout(work / f"layout-{n}", n, args.layer_mib, seed=n)
            same[n] = (work / f"layout-{n}", f"bench/img{n}")
            if args.issue_setup:
                log(f"building {n} x {args.layer_mib} MiB image (tar layers, the issue's setup)")
                make_layout(work / f"layout-{n}-tar", n, args.layer_mib, seed=n, compress=False)
                issue[n] = (work / f"layout-{n}-tar", f"bench/img{n}-tar")
        registry = Registry(work / "registry", tls=tls)
        registry.start()
        try:
            for layout, name in same.values():
                log(f"pushing {name} to docker-registry (--preserve-digests)")
                run(["skopeo", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false",
                     f"oci:{layout}:latest", f"docker://{registry.host}/{name}:latest"])  # fmt: skip
            for layout, name in issue.values():
                log(f"pushing {name} to docker-registry (plain copy: skopeo gzips the tar layers)")
                run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                     f"oci:{layout}:latest", f"docker://{registry.host}/{name}:latest"])  # fmt: skip
            with contextlib.ExitStack() as es:
                crane_stacks: dict[str, tuple[str | None, str | None]] = {
                    "crane (gunicorn sync, as in the tests) + nginx": (None, None),
                    "crane (gunicorn gthread, as in docs/crane.md) + nginx": (None, "gthread"),
                }
                if args.nginx_auto:
                    crane_stacks["crane (gunicorn sync) + nginx worker_processes auto"] = ("auto", None)
                hosts: dict[str, str] = {}
                layouts = [*same.values(), *issue.values()]
                for i, (label, (workers, wclass)) in enumerate(crane_stacks.items()):
                    s = es.enter_context(stack(work / f"stack-{i}", tls, workers, layouts, wclass))
                    hosts[label] = s.crane_host
                for n, (_l, name) in same.items():
                    want = manifest_digest(registry.host, name)
                    for label, host in hosts.items():
                        got = manifest_digest(host, name)
                        if got != want:
                            raise RuntimeError(f"{label} serves {name} as {got}, the registry as {want}")
                    for d in dests:
                        groups[(f"{n} x {args.layer_mib} MiB", d)] = [
                            (REGISTRY, registry.host, name),
                            *((lb, h, name) for lb, h in hosts.items()),
                        ]
                gthread = "crane (gunicorn gthread, as in docs/crane.md) + nginx"
                for n, (_l, name) in issue.items():
                    groups[(f"{n} x {args.layer_mib} MiB, issue's setup", "oci")] = [
                        (f"{REGISTRY} (layers gzipped by the push)", registry.host, name),
                        (f"{gthread} (layers as exported: tar)", hosts[gthread], name),
                    ]
                # The pulled copy goes to tmpfs when there is one: writing 1 GiB to a shared disk
                # per pull measures the disk more than the servers.
                shm = Path("/dev/shm")
                dest = (
                    Path(tempfile.mkdtemp(prefix="pull-bench-", dir=shm)) if shm.is_dir() else work
                ) / "out"
                es.callback(shutil.rmtree, dest.parent, True)
                times: dict[tuple[tuple[str, str], str], list[tuple[float, float]]] = {}
                for key, sources in groups.items():  # warm-up: page cache, connections
                    for label, host, name in sources:
                        pull(host, name, dest, key[1])
                        times[(key, label)] = []
                for r in range(args.rounds):
                    for key, sources in groups.items():
                        for label, host, name in sources:
                            times[(key, label)].append(pull(host, name, dest, key[1]))
                    log(f"round {r + 1}/{args.rounds} done")
        finally:
            registry.stop()
        print(
            f"skopeo {run(['skopeo', '--version']).stdout.split()[-1]} `copy docker://… <dest>`, TLS "
            f"on loopback, {args.layer_mib} MiB random layers, the same manifest digest from every "
            f"source; {args.rounds} interleaved rounds after one warm-up pull each, medians (min-max) "
            "in seconds.\n"
        )
        print(
            "| image | dest | source | wall median s | min-max s | MB/s | wall ratio | "
            "skopeo CPU median s | CPU ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for key, sources in groups.items():
            image, d = key
            ref_label = sources[0][0]
            ref = statistics.median(t for t, _c in times[(key, ref_label)])
            ref_cpu = statistics.median(c for _t, c in times[(key, ref_label)])
            size_mb = int(image.split(" x ")[0]) * args.layer_mib * 1.048576
            for label, _h, _n in sources:
                walls = [t for t, _c in times[(key, label)]]
                cpus = [c for _t, c in times[(key, label)]]
                med, cpu = statistics.median(walls), statistics.median(cpus)
                print(
                    f"| {image} | {d}: | {label} | {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | "
                    f"{size_mb / med:.0f} | {med / ref:.2f} | {cpu:.2f} | {cpu / ref_cpu:.2f} |"
                )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
