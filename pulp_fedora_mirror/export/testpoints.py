"""Named pause points, used only by the crash and write-order tests.

The tests must observe the real tree at every moment something becomes visible, and kill the
exporter there, without mocks. So every publishing ``rename`` calls :func:`reached`. When the
environment variable ``FEDORA_MIRROR_TESTPOINTS`` names a file, the label is appended to it and
the process stops itself with ``SIGSTOP``; the test (its parent) inspects the tree, then sends
``SIGCONT`` or ``SIGKILL``. Unset (always, in production) this is one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "FEDORA_MIRROR_TESTPOINTS"


def reached(label: str) -> None:
    """Record ``label`` and stop until the controlling test resumes us (no-op unless enabled)."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(label + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGSTOP)
