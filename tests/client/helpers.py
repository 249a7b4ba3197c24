"""Run the real ``fedora-mirror`` entry point in a child process, as an admin or Bodhi would."""

from __future__ import annotations

import os
import subprocess
import sys

CLI = [sys.executable, "-c", "import sys; from pulp_fedora_mirror.cli import main; sys.exit(main())"]

#: Environment variables that would leak the developer's own Pulp settings into a test.
PULP_ENV = (
    "PULP_URL",
    "PULP_USERNAME",
    "PULP_PASSWORD",
    "PULP_CA_BUNDLE",
    "PULP_CLIENT_CERT",
    "PULP_CLIENT_KEY",
)


def run_cli(*args: str, home: str, env: dict[str, str] | None = None, timeout: float = 60):
    """``fedora-mirror ARGS`` with a clean HOME (no ~/.config/fedora-mirror/pulp.toml) and env."""
    full = {k: v for k, v in os.environ.items() if k not in PULP_ENV}
    full["HOME"] = home
    full.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=full)


def assert_one_line_error(result, code: int, *needles: str) -> None:
    """Exit code ``code``, exactly one stderr line starting with ``fedora-mirror:``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fedora-mirror: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
