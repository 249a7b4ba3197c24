"""Mirror lag (issue 3): fresh blobs must come from the master until the mirrors have them.

The cast, all real processes except the redirector (a few lines of test code standing in for
``download.fedoraproject.org``):

- **master** nginx over the exporter's tree (``urls.master``), always current;
- **mirror** nginx over an *older copy* of that tree: it was synced after the first publish and
  has not seen the second one (quick-fedora-mirror runs every few hours, ``mirrors.md`` §6);
- **redirector** on loopback, ``urls.mirror`` in the metadata: 302s ``/pub/containers/<path>``
  to the mirror with no content check, like MirrorManager for a directory it believes current;
- **crane_fedora** (gunicorn, TLS) over the metadata ``fedora-mirror export`` wrote.

The first publish is made to look two days old by moving its ``published`` times back in the
metadata (the only place the exporter records them; the second export must keep them). Then:

1. ``settle_seconds = 3600``: the freshly published tag pulls fine; its new blobs are redirected
   to the master (Location headers, master access log), the blobs it shares with the old tags go
   through the redirector to the mirror (redirector and mirror access logs).
2. "Settled" (a second crane with ``settle_seconds = 0``, i.e. an hour later): the same fresh
   blob is now sent to the mirror network; while the mirror still lags the pull fails (404 at
   the mirror) — exactly why the settle window exists — and once the mirror syncs it succeeds.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures.build_images import FixtureImage
from pulp_fedora_mirror import layout
from tests.e2e.helpers import (
    CliRun,
    LogCursor,
    blob_hex,
    dir_layout_files,
    fedora_mirror,
    hexes,
    sync_mirror,
)
from tests.harness import clients
from tests.harness.containerd import Containerd
from tests.harness.crane import APP
from tests.harness.gunicorn import Gunicorn
from tests.harness.nginx import Nginx
from tests.harness.ports import LOOPBACK, free_port
from tests.harness.tls import TLSFiles

pytestmark = [pytest.mark.services, pytest.mark.clients]

NAME = "fedora/lag"
OLD_TAGS = ["single-docker", "multi-docker"]  # first publish, long ago; the mirror has these
NEW_TAG = "multi-oci"  # second publish, just now; shares two blobs with multi-docker
AGE = 2 * 86400  # how long ago the first publish "was"
SETTLE = 3600
PREFIX = "/pub/containers/"


# -- the redirector -----------------------------------------------------------------------------


@dataclass
class Redirect:
    """One request the redirector answered."""

    method: str
    path: str
    status: int
    location: str | None


class Redirector:
    """A tiny MirrorManager redirector: ``PREFIX<path>`` → 302 ``<target><path>``, else 404.

    Like ``mirrorlist-server`` with ``redirect=1`` it never checks that the mirror has the file;
    HEAD and GET get the same answer. TLS with the test CA's certificate, because the real one is
    https and clients must follow an https → https hop across hosts. Runs in a thread of the test
    process; every answer is recorded in ``requests`` (the redirector's access log).
    """

    def __init__(self, target: str, tls: TLSFiles) -> None:
        self.target = target
        self.tls = tls
        self.port = free_port()
        self.requests: list[Redirect] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The metadata's ``urls.mirror``."""
        return f"https://{LOOPBACK}:{self.port}{PREFIX}"

    def start(self) -> Redirector:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith(PREFIX) and ".." not in path:
                    status, location, body = 302, outer.target + path[len(PREFIX) :], b""
                else:
                    status, location, body = 404, None, b"error: invalid path\n"
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)
                with outer._lock:
                    outer.requests.append(Redirect(self.command, path, status, location))

            do_GET = _answer
            do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # recorded in outer.requests instead

        server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="redirector", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def since(self, n: int) -> list[Redirect]:
        """Requests after the first ``n`` (take ``len(r.requests)`` before a step)."""
        with self._lock:
            return list(self.requests[n:])


# -- crane ----------------------------------------------------------------------------------------


def crane_service(state: Path, metadata: Path, tls: TLSFiles, settle: int, prefixes: list[str]) -> Gunicorn:
    """crane_fedora under gunicorn (TLS) with its documented INI config (not started yet)."""
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "crane.conf"
    conf.write_text(
        "[general]\ndebug: true\n"
        f"data_dir: {metadata}/\ndata_dir_polling_interval: 1\n\n"
        f"[mirrors]\nsettle_seconds: {settle}\nallowed_url_prefixes: {' '.join(prefixes)}\n"
    )
    return Gunicorn(state, APP, tls=tls, env={"CRANE_CONFIG_PATH": str(conf)}, workers=2)


# -- the scenario ----------------------------------------------------------------------------------


def sub_layout(full: Path, dest: Path, refs: list[str]) -> Path:
    """An OCI layout holding only ``refs`` of the fixture layout (blobs hard-linked: instant)."""
    shutil.copytree(full / "blobs", dest / "blobs", copy_function=os.link)
    shutil.copyfile(full / "oci-layout", dest / "oci-layout")
    index = json.loads((full / "index.json").read_text())
    index["manifests"] = [
        m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] in refs
    ]
    assert len(index["manifests"]) == len(refs)
    (dest / "index.json").write_text(json.dumps(index))
    return dest


@dataclass
class Lag:
    images: dict[str, FixtureImage]
    tls: TLSFiles
    base: Path
    master_tree: Path
    mirror_tree: Path
    metadata: Path
    master: Nginx
    mirror: Nginx
    redirector: Redirector
    crane: Gunicorn
    exports: dict[str, CliRun] = field(default_factory=dict)
    aged_published: dict[str, int] = field(default_factory=dict)
    second_export_started: float = 0.0
    mirror_missing: set[str] = field(default_factory=set)

    @property
    def fresh(self) -> set[str]:
        """Blobs the second publish brought (in no old tag)."""
        old = set().union(*(self.images[t].blobs for t in OLD_TAGS))
        return set(self.images[NEW_TAG].blobs) - old

    @property
    def shared(self) -> set[str]:
        """Blobs of the new tag that the old tags published long ago."""
        return set(self.images[NEW_TAG].blobs) - self.fresh

    def export(self, layout_dir: Path) -> CliRun:
        return fedora_mirror(
            "export", str(layout_dir), "--name", NAME, "--root", str(self.master_tree),
            "--metadata-dir", str(self.metadata), "--master-url", self.master.url,
            "--mirror-url", self.redirector.url, "--json", "-q",
            home=self.base,
        ).check()  # fmt: skip


@pytest.fixture(scope="module")
def lag(state_dir: Path, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage]) -> Iterator[Lag]:
    base = state_dir / "e2e-lag"
    full = Path(fixture_images[NEW_TAG].oci_layout)
    v1 = sub_layout(full, base / "layout-v1", OLD_TAGS)
    v2 = sub_layout(full, base / "layout-v2", [*OLD_TAGS, NEW_TAG])
    master_tree, mirror_tree = base / "master" / "containers", base / "mirror" / "containers"
    mirror = Nginx(base / "nginx-mirror", mirror_tree, tls=tls_ca, url_prefix="/fedora/containers/")
    redirector = Redirector(mirror.url, tls_ca)
    master = Nginx(base / "nginx-master", master_tree, tls=tls_ca, url_prefix=PREFIX)
    s = Lag(
        images=fixture_images,
        tls=tls_ca,
        base=base,
        master_tree=master_tree,
        mirror_tree=mirror_tree,
        metadata=base / "metadata",
        master=master,
        mirror=mirror,
        redirector=redirector,
        crane=crane_service(
            base / "crane-settling", base / "metadata", tls_ca, SETTLE, [master.url, redirector.url]
        ),
    )
    try:
        # First publish, then pretend it happened two days ago.
        s.exports["v1"] = s.export(v1)
        meta_file = s.metadata / f"{NAME}.json"
        doc = json.loads(meta_file.read_text())
        for info in doc["blobs"].values():
            info["published"] -= AGE
        s.aged_published = {d: info["published"] for d, info in doc["blobs"].items()}
        meta_file.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))

        # The mirror syncs the first publish (by its file list); it will not see the second one.
        synced = sync_mirror(master_tree, mirror_tree)
        assert len(synced) == s.exports["v1"].json()["blobs"] + s.exports["v1"].json()["manifests"]

        # Second publish: a new tag with new blobs, into the master tree only.
        s.second_export_started = time.time()
        s.exports["v2"] = s.export(v2)
        s.mirror_missing = {d for d in s.fresh if not (mirror_tree / layout.blob_path(d)).exists()}

        master.start()
        mirror.start()
        redirector.start()
        s.crane.start()
        yield s
    finally:
        s.crane.stop()
        redirector.stop()
        mirror.stop()
        master.stop()


def blob_location(crane: Gunicorn, tls: TLSFiles, digest: str) -> str:
    """crane's answer to ``GET /v2/NAME/blobs/<digest>``: must be a 302; returns its Location."""
    r = requests.get(
        f"{crane.url}/v2/{NAME}/blobs/{digest}", allow_redirects=False, verify=str(tls.ca_cert), timeout=10
    )
    assert r.status_code == 302, (r.status_code, r.text)
    return r.headers["Location"]


def settled_logs(cursors: dict[str, LogCursor], want: dict[str, set[str]]) -> dict[str, list[Any]]:
    """Read nginx access logs until each holds the wanted blob GETs (logs lag the client a bit)."""
    got: dict[str, list[Any]] = {k: [] for k in cursors}
    deadline = time.monotonic() + 10
    while True:
        for k, c in cursors.items():
            got[k] += c.read()
        seen = {k: {blob_hex(h.path) for h in v if h.method == "GET"} for k, v in got.items()}
        if all(want[k] <= seen[k] for k in want) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


# -- tests ------------------------------------------------------------------------------------------


def test_second_export_keeps_old_times_and_the_mirror_lags(lag: Lag) -> None:
    """The exporter keeps each blob's first ``published`` time and stamps new blobs now; the
    mirror copy really lacks the new blobs (the premise of everything below)."""
    s2 = json.loads(lag.exports["v2"].stdout)
    assert s2["tags"] == {t: lag.images[t].digest for t in [*OLD_TAGS, NEW_TAG]}
    assert s2["blobs_linked"] == len(lag.fresh) and s2["blobs_present"] == s2["blobs"] - len(lag.fresh)
    doc = json.loads((lag.metadata / f"{NAME}.json").read_text())
    assert doc["urls"] == {"master": lag.master.url, "mirror": lag.redirector.url}
    for digest, published in lag.aged_published.items():
        assert doc["blobs"][digest]["published"] == published, digest
    for digest in lag.fresh:
        assert doc["blobs"][digest]["published"] >= int(lag.second_export_started)
    assert lag.mirror_missing == lag.fresh
    assert lag.shared, "the new tag must share blobs with the old ones"


def test_settling_fresh_blobs_redirect_to_the_master(lag: Lag) -> None:
    """``settle_seconds = 3600``: Location is the master for fresh blobs, the redirector
    (mirror network) for blobs published two days ago."""
    for digest in lag.fresh:
        assert blob_location(lag.crane, lag.tls, digest) == lag.master.url + layout.blob_path(digest)
    for digest in lag.shared | set().union(*(lag.images[t].blobs for t in OLD_TAGS)):
        assert blob_location(lag.crane, lag.tls, digest) == lag.redirector.url + layout.blob_path(digest)


def test_fresh_tag_pulls_while_the_mirror_lags(lag: Lag, tmp_path: Path) -> None:
    """skopeo pulls the new tag: fresh blobs from the master, shared ones via redirector → mirror."""
    image = lag.images[NEW_TAG]
    cursors = {
        "master": LogCursor(lag.master.access_log_path),
        "mirror": LogCursor(lag.mirror.access_log_path),
    }
    n = len(lag.redirector.requests)
    res = clients.skopeo_copy(
        f"docker://{lag.crane.host}/{NAME}:{NEW_TAG}",
        f"dir:{tmp_path / 'd'}",
        preserve_digests=True,
        src_cert_dir=lag.tls.cert_dir(),
    )
    assert res.digest == image.digest
    assert dir_layout_files(tmp_path / "d") == dir_layout_files(Path(image.dir_path))
    logs = settled_logs(cursors, {"master": hexes(lag.fresh), "mirror": hexes(lag.shared)})
    master = {blob_hex(h.path) for h in logs["master"] if h.method == "GET" and h.status == 200}
    mirror = {blob_hex(h.path) for h in logs["mirror"] if h.method == "GET" and h.status == 200}
    assert master == hexes(lag.fresh)
    assert mirror == hexes(lag.shared)
    redirected = {blob_hex(r.path) for r in lag.redirector.since(n) if r.method == "GET"}
    assert redirected == hexes(lag.shared)
    assert all(r.status == 302 and r.location.startswith(lag.mirror.url) for r in lag.redirector.since(n))


@pytest.fixture(scope="module")
def own_containerd(lag: Lag) -> Iterator[Containerd]:
    """A containerd of this module's own: containerd shares content between namespaces, so one
    that already pulled these fixtures (the chain test's) would fetch nothing here."""
    with Containerd(lag.base / "containerd") as c:
        yield c


def test_ctr_follows_crane_redirector_mirror(lag: Lag, own_containerd: Containerd) -> None:
    """containerd (own HTTP stack, own redirect policy) takes the same two-hop path for the old
    tag: crane → redirector → mirror, never the master."""
    image = lag.images["multi-docker"]
    amd64 = hexes(image.manifests[image.child_for("amd64")].blobs)
    cursors = {
        "master": LogCursor(lag.master.access_log_path),
        "mirror": LogCursor(lag.mirror.access_log_path),
    }
    n = len(lag.redirector.requests)
    res = clients.ctr_pull(
        own_containerd, f"{lag.crane.host}/{NAME}:multi-docker", hosts_dir=lag.tls.hosts_dir(lag.crane.host)
    )
    assert res.digest == image.digest
    logs = settled_logs(cursors, {"mirror": amd64})
    assert {blob_hex(r.path) for r in lag.redirector.since(n) if r.method == "GET"} == amd64
    assert {blob_hex(h.path) for h in logs["mirror"] if h.method == "GET" and h.status == 200} == amd64
    assert [h for h in logs["master"] if h.method == "GET"] == []


def test_settled_blob_goes_to_the_mirror_network_and_fails_until_the_mirror_syncs(
    lag: Lag, tmp_path: Path
) -> None:
    """An hour later (``settle_seconds = 0`` here) crane trusts the mirror network with the new
    blobs. If the mirror has not synced by then, the pull fails with a 404 at the mirror; after
    the sync it succeeds — the window ``settle_seconds`` must be longer than."""
    for digest in lag.fresh:  # the mirror still lags, whatever ran before
        (lag.mirror_tree / layout.blob_path(digest)).unlink(missing_ok=True)
    image = lag.images[NEW_TAG]
    crane = crane_service(
        lag.base / "crane-settled", lag.metadata, lag.tls, 0, [lag.master.url, lag.redirector.url]
    ).start()
    try:
        for digest in lag.fresh:
            assert blob_location(crane, lag.tls, digest) == lag.redirector.url + layout.blob_path(digest)

        mirror_log = LogCursor(lag.mirror.access_log_path)
        with pytest.raises(clients.ClientError) as info:
            clients.skopeo_copy(
                f"docker://{crane.host}/{NAME}:{NEW_TAG}",
                f"dir:{tmp_path / 'lagging'}",
                src_cert_dir=lag.tls.cert_dir(),
            )
        assert "404" in info.value.stderr or "not found" in info.value.stderr.lower(), info.value.stderr
        misses = mirror_log.read()
        deadline = time.monotonic() + 10
        while not any(h.status == 404 for h in misses) and time.monotonic() < deadline:
            time.sleep(0.1)
            misses += mirror_log.read()
        not_found = {blob_hex(h.path) for h in misses if h.status == 404}
        assert not_found and not_found <= hexes(lag.fresh), misses

        # quick-fedora-mirror catches up: exactly the files the second publish added.
        copied = sync_mirror(lag.master_tree, lag.mirror_tree)
        assert {Path(p).name for p in copied} == hexes(lag.fresh) | hexes(image.manifests)
        mirror_log = LogCursor(lag.mirror.access_log_path)
        master_log = LogCursor(lag.master.access_log_path)
        res = clients.skopeo_copy(
            f"docker://{crane.host}/{NAME}:{NEW_TAG}",
            f"dir:{tmp_path / 'synced'}",
            preserve_digests=True,
            src_cert_dir=lag.tls.cert_dir(),
        )
        assert res.digest == image.digest
        assert dir_layout_files(tmp_path / "synced") == dir_layout_files(Path(image.dir_path))
        logs = settled_logs(
            {"mirror": mirror_log, "master": master_log}, {"mirror": hexes(image.blob_digests)}
        )
        assert {blob_hex(h.path) for h in logs["mirror"] if h.status == 200} == hexes(image.blob_digests)
        assert [h for h in logs["master"] if h.method == "GET"] == []
    finally:
        crane.stop()
