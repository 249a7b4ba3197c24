"""crane_fedora must run without Pulp or Django, and without pika (notifications are optional)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter from the project root (nothing imported beforehand);
    fail the test with its stderr unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    return proc


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
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pulp_fedora_mirror.'))))\n"
        "print(json.dumps(bad))\n"
    )
    proc = _python(code)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert set(json.loads(proc.stdout.strip().splitlines()[-2])) <= ALLOWED


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
    proc = _python(code)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [200, False, False]
    assert proc.stderr.count("pika is not installed") == 1, proc.stderr


#: What crane_fedora may import from this project's other package: the exporter/crane contract
#: (layout, media types) and the pika connection parameters both sides share (plain modules with no
#: Django and no import-time pika). Anything else there (app/, notify/, export/) is the Pulp side.
ALLOWED = {"pulp_fedora_mirror.layout", "pulp_fedora_mirror.mediatypes", "pulp_fedora_mirror.amqp"}
#: Third-party top-level packages crane_fedora must never import.
FORBIDDEN = {"django", "pulpcore", "pulp_container", "rest_framework"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_source_imports_only_the_allowed_modules_of_the_project():
    root = Path(__file__).resolve().parents[2] / "crane_fedora"
    for path in root.rglob("*.py"):
        imported = _imports(path)
        ours = {n for n in imported if n == "pulp_fedora_mirror" or n.startswith("pulp_fedora_mirror.")}
        # "from pulp_fedora_mirror.layout import X" also records "pulp_fedora_mirror.layout.X"
        outside = {n for n in ours if not any(n == a or n.startswith(a + ".") for a in ALLOWED)}
        assert not outside, f"{path} imports {sorted(outside)}; allowed: {sorted(ALLOWED)}"
        bad = {n for n in imported if n.split(".")[0] in FORBIDDEN}
        assert not bad, f"{path} imports {sorted(bad)}"


def test_allow_list_is_enforced():
    """The check above would catch a forbidden import (it is not vacuous)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.py"
        probe.write_text("from pulp_fedora_mirror.notify import outbox\nimport pulp_fedora_mirror.export\n")
        ours = _imports(probe)
    assert {"pulp_fedora_mirror.notify", "pulp_fedora_mirror.export"} <= ours
    assert not any(n == a or n.startswith(a + ".") for n in ours for a in ALLOWED)
