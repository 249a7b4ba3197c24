"""WSGI entry point: ``gunicorn crane_fedora.wsgi:application``.

A bad configuration prints one line naming the section/key and exits with status 3, instead of a
traceback in the server log.

Why the dance under gunicorn: without ``--preload`` the master never imports this module, so the
check runs in every worker at once. Each printed the error, and when two of them exited with 3
(gunicorn's WORKER_BOOT_ERROR) before the master had finished halting, the master raised its
``HaltServer`` a second time from inside its own shutdown: two tracebacks and exit status 1
(issue 13 item 6). So exactly one worker per master reports and exits 3; its siblings stay
silent and wait for the master's SIGTERM, which they answer with status 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import time

from crane_fedora.app import create_app
from crane_fedora.config import ConfigError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

#: 3 is gunicorn's WORKER_BOOT_ERROR: the master stops instead of respawning workers forever.
EXIT_CONFIG = 3
#: How long a silent sibling waits for the master's SIGTERM before leaving on its own.
SIBLING_WAIT = 10.0


def _under_gunicorn() -> bool:
    """A gunicorn worker is a fork of the arbiter, so the arbiter's module is already loaded."""
    return "gunicorn.arbiter" in sys.modules


def _master_start(pid: int) -> str:
    """The parent's start time (clock ticks since boot), so a reused pid is another master."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "0"


def _first_to_report() -> bool:
    """True in exactly one worker per gunicorn master: the first to create the marker file."""
    master = os.getppid()
    marker = os.path.join(
        tempfile.gettempdir(), f".crane_fedora-config-error-{master}-{_master_start(master)}"
    )
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:  # no usable temp dir: report (a duplicate line beats silence)
        return True
    return True


def _wait_for_master() -> None:
    """A silent sibling: leave with status 0 when the halting master says so (or after a while)."""

    def leave(_signum: int, _frame: object) -> None:
        os._exit(0)

    worker = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, leave)
    # The master may have sent its SIGTERM while we were still importing: gunicorn's own
    # handler then only cleared the worker's ``alive`` flag. Checked after ours is installed.
    if getattr(worker, "alive", True) is False:
        os._exit(0)
    deadline = time.monotonic() + SIBLING_WAIT
    while time.monotonic() < deadline:
        time.sleep(0.5)
    os._exit(0)


try:
    application = create_app()
except ConfigError as exc:
    if _under_gunicorn() and not _first_to_report():
        _wait_for_master()
    print(f"crane_fedora: configuration error: {exc}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)
