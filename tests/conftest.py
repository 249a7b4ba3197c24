"""Suite-wide rules: in CI (``CI=true``) a skipped test fails the run; one real Pulp per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn skips (and xfails) into a failing exit status in CI: nothing may be skipped there."""
    if not _in_ci():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", []) + reporter.stats.get("xfailed", [])
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; skips are failures in CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def pulp_server() -> Iterator[Any]:
    """The session's one real Pulp, shared by tests/pulp and tests/client (one PostgreSQL, one
    set of Pulp processes): started on first use, stopped at the end of the session."""
    from tests.pulp.conftest import start_session_pulp

    server = start_session_pulp()
    try:
        yield server
    finally:
        server.stop()
