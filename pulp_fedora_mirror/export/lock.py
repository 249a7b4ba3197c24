"""One writer per tree: an exclusive ``flock`` on the ROOT directory itself.

Locking the directory (not a lock file inside it) keeps the tree free of extra files that would
land in the file list, and the lock dies with the process, so a SIGKILLed exporter never leaves
a stale lock behind. Export and prune take the same lock; a second one waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from .atomic import makedirs


@contextlib.contextmanager
def tree_lock(root: str) -> Iterator[None]:
    """Hold an exclusive flock on ``root`` (created 0755 if missing) for the block."""
    makedirs(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock
