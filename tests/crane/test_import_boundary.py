"""crane_fedora must run without Pulp or Django, and without pika (notifications are optional)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_no_pulp_or_django_loaded(tmp_path):
    code = (
        "import sys, json\n"
        "import crane_fedora\n"
        "from crane_fedora.app import create_app\n"
        "from crane_fedora.config import parse_config\n"
        f"app = create_app(parse_config('[general]\\ndata_dir = {tmp_path}\\n'))\n"
        "app.test_client().get('/v2/')\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(top & {'django', 'pulpcore', 'pulp_container', 'pika'})\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_runs_without_pika_even_when_notifications_are_configured(tmp_path):
    """pika missing: one clear error at startup, the listener stays off, everything else serves."""
    code = (
        "import importlib.abc, logging, sys, json, threading\n"
        "class NoPika(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pika' or name.startswith('pika.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoPika())\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from crane_fedora.app import create_app\n"
        "from crane_fedora.config import parse_config\n"
        f"text = '[general]\\ndata_dir = {tmp_path}\\n[notifications]\\namqp_url = amqp://127.0.0.1:1/'\n"
        "app = create_app(parse_config(text))\n"
        "status = app.test_client().get('/v2/').status_code\n"
        "names = [t.name for t in threading.enumerate()]\n"
        "print(json.dumps([status, 'pika' in sys.modules, 'crane-metadata-listener' in names]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [200, False, False]
    assert proc.stderr.count("pika is not installed") == 1, proc.stderr


def test_source_imports_nothing_from_pulp():
    root = Path(__file__).resolve().parents[2] / "crane_fedora"
    for path in root.rglob("*.py"):
        text = path.read_text()
        for bad in ("import django", "from django", "pulpcore", "pulp_container", "pulp_fedora_mirror.app"):
            assert bad not in text, f"{path} mentions {bad}"
