"""Without pulp-glue (the plain install), the Pulp commands say in one line what to install."""

from __future__ import annotations

import subprocess
import sys

from .helpers import assert_one_line_error

NO_GLUE = (
    "import sys; sys.modules['pulp_glue'] = None; "  # what a venv without pulp-glue looks like to import
    "from pulp_fedora_mirror.cli import main; sys.exit(main())"
)


def test_promote_without_pulp_glue_is_a_one_line_error(tmp_path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_GLUE,
            "promote",
            "--from",
            "a",
            "--to",
            "b",
            "--tag",
            "x",
            "--pulp-url",
            "http://x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert_one_line_error(r, 2, "needs pulp-glue", "pulp-fedora-mirror[cli]")
