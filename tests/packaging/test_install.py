"""``pip install .`` is enough for the export core, the CLI and crane_fedora (no Pulp, no Django).

Front-end hosts run crane_fedora and mirror admins run ``fedora-mirror verify``/``export`` without a
Pulp installation: prove it by installing the checkout into a fresh venv without the ``[pulp]``
extra and using both from there.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services  # builds a venv (pip from the package index or its cache)


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("plain-venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # A non-editable install from a copy of the tree, as a user would get it.
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return env_dir


def test_plain_install_has_no_pulp_or_django(plain_venv: Path) -> None:
    py = plain_venv / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(r.stdout)}
    assert "pulp-fedora-mirror" in names and "flask" in names
    assert not names & {"pulpcore", "pulp-container", "django"}, names


def test_cli_and_crane_work_from_a_plain_install(plain_venv: Path, tmp_path: Path) -> None:
    fm = plain_venv / "bin" / "fedora-mirror"
    r = subprocess.run([str(fm), "--help"], capture_output=True, text=True, check=True)
    for sub in ("export", "verify", "prune", "promote", "publish", "release", "notifications"):
        assert sub in r.stdout, (sub, r.stdout)
    # A real export from an OCI layout of the fixture images, then verify, all with the plain install.
    from fixtures.build_images import build_images

    build_images(tmp_path / "images")
    root, meta = tmp_path / "containers", tmp_path / "metadata"
    r = subprocess.run(
        [
            str(fm),
            "export",
            str(tmp_path / "images" / "oci"),
            "--name",
            "fedora/demo",
            "--root",
            str(root),
            "--metadata-dir",
            str(meta),
            "--master-url",
            "https://dl.example.org/pub/containers/",
            "--json",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["manifests"] > 0
    r = subprocess.run(
        [str(fm), "verify", str(root), "--metadata-dir", str(meta)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # crane_fedora serves that metadata from the plain install, and Django/Pulp never get imported.
    conf = tmp_path / "crane.conf"
    conf.write_text(f"[general]\ndata_dir: {meta}\n")
    probe = (
        "import sys, json\n"
        "from crane_fedora.app import create_app\n"
        "app = create_app()\n"
        "c = app.test_client()\n"
        "r = c.get('/v2/fedora/demo/tags/list')\n"
        "home = c.get('/r/fedora/demo')\n"  # the home page's templates and assets are installed
        "css = c.get('/-/static/ui.css')\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(top & {'django', 'pulpcore', 'pulp_container'})\n"
        "print(json.dumps({'status': r.status_code, 'tags': r.get_json().get('tags'), 'bad': bad,\n"
        "  'home': [home.status_code, 'podman pull' in home.get_data(as_text=True), css.status_code]}))\n"
    )
    r = subprocess.run(
        [str(plain_venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        env={"CRANE_CONFIG_PATH": str(conf), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["tags"], out
    assert out["home"] == [200, True, 200], out
    assert out["bad"] == [], out
