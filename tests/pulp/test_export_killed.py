"""An export task whose worker is SIGKILLed leaves no export record behind (issue 13, item 4).

A real Pulp: the session worker is stopped and a worker of the test's own, started through the
crash tests' launcher (``tests/unit/testpoint_runner.py --pulp-worker``, the only way test points
are turned on), takes the export. Its task process stops itself (SIGSTOP) after
every publishing rename of the core; the test looks at the REST API at every stop, lets it run on
to the last stop (the file list: the tree and the metadata are complete, only the task's
bookkeeping is left) and kills the whole worker with SIGKILL there. No ``MirrorExport`` may be
listed at any point: a record claims a finished export.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import EXPORTERS, Registry, sync_repo, uid

pytestmark = pytest.mark.pulp


def _stopped_in_group(pgid: int) -> list[int]:
    """PIDs of the process group ``pgid`` that are stopped (state T): the paused task process."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "T" and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


def _wait_stop(points: Path, seen: int, pgid: int, timeout: float = 60) -> list[str]:
    """Wait until the task process recorded a new label and stopped; return all labels."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        labels = points.read_text().splitlines() if points.exists() else []
        if len(labels) > seen and _stopped_in_group(pgid):
            return labels
        time.sleep(0.05)
    raise AssertionError(f"no new test point after {seen} within {timeout} s: {points}")


def test_sigkilled_export_leaves_no_record(
    api: PulpApi, pulp: PulpServer, registry: Registry, export_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # Own repository and exporter: the killed task keeps its locks until pulpcore declares its
    # worker missing (WORKER_TTL, then a randomised cleanup interval: minutes), so nothing
    # another test uses may be among them.
    repo = sync_repo(api, registry, "multi-oci")
    tree, meta = export_dirs
    exporter = api.ok(
        api.post(
            EXPORTERS,
            {
                "name": uid("exp"),
                "path": str(tree),
                "metadata_path": str(meta),
                "master_url": "https://dl.example.org/pub/containers/",
            },
        ),
        201,
    )
    exports_url = exporter["pulp_href"] + "exports/"
    points = tmp_path / "points"
    pulp.stop_service("worker")
    worker = None
    try:
        runner = Path(__file__).resolve().parents[1] / "unit" / "testpoint_runner.py"
        argv = [str(pulp.bin_dir / "python"), str(runner), "--pulp-worker", str(points)]
        worker = pulp.spawn_worker("worker-testpoints", argv=argv)
        task_href = api.ok(api.post(exports_url, {"repository": repo.href}), 202)["task"]
        labels: list[str] = []
        while True:
            labels = _wait_stop(points, len(labels), worker.pid)
            listed = api.ok(api.get(exports_url), 200)
            assert listed["count"] == 0, (labels[-1], listed["results"])
            if labels[-1] == "filelist":
                break
            for pid in _stopped_in_group(worker.pid):
                os.kill(pid, signal.SIGCONT)
        assert "metadata" in labels  # the export really got that far
        pulp.kill_worker(worker, signal.SIGKILL)
        worker = None
        task = api.ok(api.get(task_href), 200)
        assert task["state"] == "running"  # nobody has cleaned up after the dead worker yet
        listed = api.ok(api.get(exports_url), 200)
        assert listed["count"] == 0, listed["results"]
        assert not [h for h in task["created_resources"] if "/exports/" in h]
        # the tree itself was complete: only the task's own bookkeeping had not happened
        assert (meta / f"{repo.name}.json").is_file()
    finally:
        if worker is not None:
            pulp.kill_worker(worker, signal.SIGKILL)
        pulp.start_service("worker")
    # Deleting the exporter waits for pulpcore's cleanup of the dead task; not waited for here.
    api.ok(api.delete(exporter["pulp_href"]), 202)
