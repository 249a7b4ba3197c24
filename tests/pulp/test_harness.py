"""The harness itself: migrations are committed, and PostgreSQL works without a shared server."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.postgres import Postgres
from tests.harness.pulp import PulpServer


def test_migrations_committed(pulp: PulpServer) -> None:
    """``makemigrations --check`` is clean: models and committed migrations agree."""
    out = pulp.manage("makemigrations", "fedora_mirror", "--check", "--dry-run")
    assert "No changes detected" in out.stdout


@pytest.fixture
def mktemp_d() -> Iterator[Path]:
    """A ``mktemp -d`` directory (mode 0700) in /tmp.

    Not pytest's tmp_path: concurrent pytest sessions reset /tmp/pytest-of-root to 0700, which
    would take the postgres user's search permission away mid-test.
    """
    d = Path(tempfile.mkdtemp(prefix="fm-pg-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_throwaway_cluster(mktemp_d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no server on 5432 and no URL, a private cluster is created, then reused."""
    monkeypatch.delenv("PULP_TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(Postgres, "_shared_answers", staticmethod(lambda: False))
    state = mktemp_d / "private" / "state"
    pg = Postgres(state)
    try:
        db = pg.start()
        assert pg.mode == "cluster" and db.port != 5432
        import psycopg

        with psycopg.connect(host=db.host, port=db.port, user=db.user, dbname=db.name) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.commit()
    finally:
        pg.stop()
    again = Postgres(state)
    try:
        t0 = time.monotonic()
        db2 = again.start()
        assert time.monotonic() - t0 < 10
        with psycopg.connect(host=db2.host, port=db2.port, user=db2.user, dbname=db2.name) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        again.stop()


def test_database_url_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULP_TEST_DATABASE_URL", "postgres://u:p%40ss@db.example:6543/pulpdb")
    db = Postgres(tmp_path).start()
    assert (db.host, db.port, db.user, db.password, db.name) == ("db.example", 6543, "u", "p@ss", "pulpdb")
