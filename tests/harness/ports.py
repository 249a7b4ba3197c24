"""Free loopback ports, chosen by the kernel, never hard-coded.

Other engineers run tests on the same machine at the same time, so a fixed port would collide.
The port is released before the service binds it; the window is tiny and services that fail to
bind report it clearly (see :class:`tests.harness.service.Service`).
"""

from __future__ import annotations

import os
import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """Wait until ``host:port`` accepts connections; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


def listening_inodes(port: int) -> set[int]:
    """Socket inodes of TCP sockets in LISTEN state on ``port`` (any address), from /proc/net."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(int(parts[9]))
        except OSError:
            continue
    return inodes


def group_listens_on(pgid: int, port: int) -> bool:
    """True if a process of process group ``pgid`` holds a listening socket on ``port``.

    Why: a readiness probe that gets an answer proves only that *something* listens; on a
    shared machine it may be another engineer's daemon that grabbed the port first.
    """
    inodes = listening_inodes(port)
    if not inodes:
        return False
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) != pgid:
                continue
            for fd in os.scandir(f"/proc/{pid}/fd"):
                if os.readlink(fd.path) in targets:
                    return True
        except OSError:
            continue
    return False
