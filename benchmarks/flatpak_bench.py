"""The Flatpak index: crane_fedora's ``/index/static`` vs nginx serving the same document.

Run: ``python -m benchmarks.flatpak_bench`` (needs Debian ``wrk``, ``nginx``, ``taskset``, and granian
in the venv). Dataset: ``--repos`` (200) repositories of version-6 metadata holding ``--images``
(1,000) Flatpak image manifests in all: per repository an OCI index tagged ``latest`` over amd64 +
arm64, and older single-arch images under version tags. The request is exactly what flatpak 1.14
sends for ``remote-ls`` (``Accept-Encoding: gzip``); nginx serves crane's own gzip document as a
static file (``gzip_static``), so both send the same bytes. Server pinned to CPU 0, wrk to the
others, one worker each, one run. Also: metadata load time with and without the index
precompute (``[flatpak] index = true/false``), best of ``--loads``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import (
    MASTER,
    NGINX_HEAD,
    OCI_INDEX,
    OCI_MANIFEST,
    SERVER_PIN,
    crane_env,
    free_port,
    granian_cmd,
    image_manifest,
    metadata_doc,
    missing_tools,
    run_snippet,
    run_wrk,
    running,
    sha,
    work_dir,
)

QUERY = "/index/static?label%3Aorg.flatpak.ref%3Aexists=1&architecture=amd64&os=linux&tag=latest"
FLATPAK_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def _image(name: str, app: str, arch: str, seed: str, manifests: dict, blobs: dict) -> dict:
    cfg, layer = f"{name}-{seed}-config".encode(), f"{name}-{seed}-layer".encode()
    for d in (cfg, layer):
        blobs[sha(d)] = {"size": 1_000_000, "published": 1_700_000_000}
    body = image_manifest(sha(cfg), 1500, [sha(layer)], 1_000_000)
    digest = sha(body.encode())
    ref = f"app/{app}/{FLATPAK_ARCH[arch]}/stable"
    manifests[digest] = {
        "mediaType": OCI_MANIFEST,
        "size": len(body),
        "body": body,
        "blobs": [sha(cfg), sha(layer)],
        "platform": {"os": "linux", "architecture": arch},
        "labels": {
            "org.flatpak.ref": ref,
            "org.flatpak.metadata": (
                f"[Application]\nname={app}\nruntime=org.fedoraproject.Platform/{FLATPAK_ARCH[arch]}/f41\n"
                "sdk=org.fedoraproject.Sdk/x86_64/f41\ncommand=run\n\n[Context]\nshared=network;ipc;\n"
                "sockets=x11;wayland;pulseaudio;\ndevices=dri;\nfilesystems=xdg-download;\n"
            ),
            "org.flatpak.installed-size": "104857600",
            "org.flatpak.download-size": "41943040",
            "org.flatpak.commit-metadata.xa.token-type": "aQAAAABp",
            "com.redhat.component": name.split("/")[-1],
            "version": seed,
        },
    }
    return {
        "digest": digest,
        "mediaType": OCI_MANIFEST,
        "size": len(body),
        "platform": {"os": "linux", "architecture": arch},
    }


def repo_doc(name: str, images: int) -> dict:
    """``images`` Flatpak images: latest = index(amd64, arm64); the rest single amd64, tagged 40, 39…"""
    app = "org.fedoraproject." + name.split("/")[-1].capitalize()
    manifests: dict[str, dict] = {}
    blobs: dict[str, dict] = {}
    children = [_image(name, app, arch, f"latest-{arch}", manifests, blobs) for arch in ("amd64", "arm64")]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, indent=3)
    index = sha(body.encode())
    manifests[index] = {"mediaType": OCI_INDEX, "size": len(body), "body": body, "manifests": children}
    tags = {"latest": index}
    for i in range(images - 2):
        tags[str(40 - i)] = _image(name, app, "amd64", f"v{40 - i}", manifests, blobs)["digest"]
    export = {"id": None, "source": "bench", "exported": ""}
    return metadata_doc(name, 6, {"master": MASTER, "mirror": None}, tags, manifests, blobs, export)


def make_dataset(data_dir: Path, repos: int, images: int) -> None:
    per_repo = max(2, images // repos)
    for i in range(repos):
        path = data_dir / "fedora" / f"app{i:04d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(repo_doc(f"fedora/app{i:04d}", per_repo), sort_keys=True))


LOAD_SNIPPET = """
import json, sys, time
from crane_fedora.config import parse_config
from crane_fedora.metadata.store import MetadataStore
from crane_fedora.metadata.flatpak import common_query
text = f"[general]\\ndata_dir = {sys.argv[1]}\\ndata_dir_polling_interval = 0\\n"
cfg = parse_config(text + f"[flatpak]\\nindex = {sys.argv[2]}\\n")
times = []
for _ in range(int(sys.argv[3])):
    store = MetadataStore(cfg)
    t = time.process_time()  # CPU time: the machine is shared, wall time measures the neighbours
    store.refresh()
    times.append(time.process_time() - t)
fi = store.index.flatpak
doc = fi.answer(common_query("amd64"), None) if fi else None
print(json.dumps({"best": min(times), "images": sum(len(e.images) + sum(len(l.images) for l in e.lists)
                  for e in fi.repos) if fi else 0, "bytes": len(doc.body) if doc else 0,
                  "gz": len(doc.gzipped) if doc else 0}))
"""


def load_time(data_dir: Path, index: bool, loads: int) -> dict:
    return run_snippet(LOAD_SNIPPET, str(data_dir), "true" if index else "false", str(loads))


NGINX_CONF = (
    NGINX_HEAD
    + """  server {{
    listen 127.0.0.1:{port};
    location = /index/static {{
      default_type application/json;
      gzip_static on;
      etag on;
      add_header Cache-Control "public, max-age=300";
      alias {work}/index.json;
    }}
  }}
}}
"""
)


def wrk(url: str, duration: int, conns: int, work: Path) -> tuple[float, float, float, int]:
    """req/s, p50 ms, p99 ms, non-2xx/3xx count of GETs with ``Accept-Encoding: gzip``."""
    script = work / "gzip.lua"
    script.write_text(
        'wrk.headers["Accept-Encoding"] = "gzip"\nwrk.headers["User-Agent"] = "Flatpak 1.14.10"\n'
    )
    return run_wrk(url, script, duration, conns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args(argv)
    venv_bin = Path(sys.executable).parent
    if missing_tools():
        return 2
    if not (venv_bin / "granian").exists():
        print("missing: granian in the venv", file=sys.stderr)
        return 2
    with work_dir("flatpak-bench-") as work:
        data_dir = work / "metadata"
        make_dataset(data_dir, args.repos, args.images)
        with_index = load_time(data_dir, True, args.loads)
        without = load_time(data_dir, False, args.loads)
        print(
            f"dataset: {args.repos} repositories, {with_index['images']} Flatpak images (version 6); "
            f"common query answer {with_index['bytes'] / 1e3:.0f} kB, gzip {with_index['gz'] / 1e3:.0f} kB\n"
        )
        extra = with_index["best"] / without["best"] - 1
        print(f"| metadata snapshot build, CPU time (best of {args.loads}) | seconds |\n|---|---|")
        print(f"| without the index (`[flatpak] index = false`) | {without['best']:.3f} |")
        print(f"| with the index precomputed (default) | {with_index['best']:.3f} |")
        print(f"| extra cost of the index | {extra * 100:+.1f} % (goal <= 10 %) |\n")

        env = crane_env(work, data_dir, 60)
        gport, nport = free_port(), free_port()
        granian = granian_cmd(gport)
        rows = []
        with running(granian, gport, work / "granian.log", env):
            url = f"http://127.0.0.1:{gport}{QUERY}"
            plain = subprocess.run(["curl", "-s", url], capture_output=True, check=True).stdout
            gz = subprocess.run(
                ["curl", "-s", "-H", "Accept-Encoding: gzip", url], capture_output=True, check=True
            )
            (work / "index.json").write_bytes(plain)
            (work / "index.json.gz").write_bytes(gz.stdout)
            wrk(url, 1, args.connections, work)  # warm-up
            rows.append(
                ("crane_fedora (granian, 1 worker)", *wrk(url, args.duration, args.connections, work))
            )
        (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, port=nport))
        nginx = [*SERVER_PIN, "nginx", "-p", str(work), "-c", str(work / "nginx.conf")]
        with running(nginx, nport, work / "nginx.log"):
            url = f"http://127.0.0.1:{nport}/index/static"
            served = subprocess.run(
                ["curl", "-s", "-H", "Accept-Encoding: gzip", url], capture_output=True, check=True
            )
            assert served.stdout == gz.stdout, "nginx must serve crane's own gzip document"
            wrk(url, 1, args.connections, work)
            rows.append(
                ("nginx (static file, gzip_static)", *wrk(url, args.duration, args.connections, work))
            )
        print(
            f"`GET {QUERY}` with `Accept-Encoding: gzip` (as flatpak 1.14 sends it), "
            f"wrk -t2 -c{args.connections} -d{args.duration}s, keep-alive; "
            "server on CPU 0, wrk on the others; one run\n"
        )
        print("| server | req/s | p50 ms | p99 ms | non-2xx/3xx |\n|---|---|---|---|---|")
        for server, rps, p50, p99, bad in rows:
            print(f"| {server} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {bad} |")
        ratio = rows[0][1] / rows[1][1] if rows[1][1] else float("nan")
        print(f"\ncrane / nginx = **{ratio:.2f}x** (goal >= 0.3x); load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
