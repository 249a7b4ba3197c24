"""``fedora-mirror`` with test points on: ``python testpoint_runner.py LOG ARGS...``; or a Pulp
worker with them on: ``python testpoint_runner.py --pulp-worker LOG [WORKER ARGS...]`` (the task
processes it forks inherit the hook).

At each :mod:`pulp_fedora_mirror.export.testpoints` point it appends the label to LOG (fsynced)
and stops itself with ``SIGSTOP``; the controlling test (its parent) inspects the tree, then sends
``SIGCONT`` or ``SIGKILL``. This launcher is the only thing that turns test points on, so the
production CLI and the Pulp task cannot be stopped by them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from pulp_fedora_mirror.cli import main
from pulp_fedora_mirror.export import testpoints


def stop_at_each_point(log: str) -> Callable[[str], None]:
    def hook(label: str) -> None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(label + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGSTOP)

    return hook


if __name__ == "__main__":
    if sys.argv[1] == "--pulp-worker":
        from pulpcore.tasking.entrypoint import worker

        testpoints.install(stop_at_each_point(sys.argv[2]))
        sys.exit(worker(args=sys.argv[3:]))
    testpoints.install(stop_at_each_point(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
