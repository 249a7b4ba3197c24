"""Fixtures: a data dir with the standard native repo and the Pulp 2 fixtures, and app factories."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from crane_fedora.app import create_app
from crane_fedora.config import parse_config

from .builder import Native, busybox

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pulp2"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "metadata"
    d.mkdir()
    return d


@pytest.fixture
def repo(data_dir: Path) -> tuple[Native, dict[str, str]]:
    native, digests = busybox()
    native.write(data_dir)
    return native, digests


@pytest.fixture
def pulp2_dir(data_dir: Path) -> Path:
    """The Pulp 2 fixtures copied in, minus the duplicate-name one (tested separately)."""
    for f in FIXTURES.glob("*/*.json"):
        if f.name != "dup-native.json":
            (data_dir / "pulp2").mkdir(exist_ok=True)
            shutil.copy(f, data_dir / "pulp2" / f.name)
    return data_dir


@pytest.fixture(params=[True, False], ids=["fastpath", "flask"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def make_app(data_dir: Path, fast_path: bool) -> Callable[..., Flask]:
    """``make_app(extra_ini)``: an app on ``data_dir`` with polling off (tests call refresh)."""
    apps: list[Flask] = []

    def factory(extra: str = "") -> Flask:
        text = f"[general]\ndata_dir = {data_dir}\ndata_dir_polling_interval = 0\n{extra}"
        app = create_app(dataclasses.replace(parse_config(text), fast_path=fast_path))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["crane_fedora"].store.stop()


@pytest.fixture
def app(make_app: Callable[..., Flask], repo, pulp2_dir) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


def refresh(app: Flask) -> bool:
    return app.extensions["crane_fedora"].store.refresh()
