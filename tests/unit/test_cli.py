"""``fedora-mirror export|verify|prune`` as a user runs them: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import os

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.cli.export import parse_duration

from .conftest import Env, run_cli


def _one_line_error(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("fedora-mirror: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


@pytest.mark.parametrize("cmd", [[], ["export"], ["verify"], ["prune"]])
def test_help(cmd: list[str]) -> None:
    r = run_cli(*cmd, "--help")
    assert r.returncode == 0
    if cmd:
        assert "examples:" in r.stdout and "fedora-mirror " + cmd[0] in r.stdout


def test_export_then_verify(env: Env) -> None:
    r = run_cli(*env.cli_args(), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["files_written"] == 31 and s["tags"]["latest"] == env.descs["index"]["digest"]
    # progress goes to stderr as plain lines when stderr is not a terminal
    assert "Exporting blobs: 20 item(s)" in r.stderr and "\r" not in r.stderr
    r = run_cli("verify", env.root, "--metadata-dir", env.meta, "--json")
    assert r.returncode == 0
    res = json.loads(r.stdout)
    assert res["ok"] and res["checked"] == 29 and res["unreferenced"] == []
    r = run_cli("verify", env.root)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK")


def test_verify_reports_problems(env: Env) -> None:
    assert run_cli(*env.cli_args(), "--copy").returncode == 0
    doc = json.load(open(os.path.join(env.meta, "fedora", "busybox.json")))
    blobs = sorted(doc["blobs"])
    corrupt = os.path.join(env.root, layout.blob_path(blobs[0]))
    with open(corrupt, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 1]))
    missing = layout.blob_path(blobs[1])
    os.unlink(os.path.join(env.root, missing))
    os.chmod(os.path.join(env.root, layout.blob_path(blobs[2])), 0o600)
    extra = "blobs/sha256/ab/ab" + "0" * 62
    os.makedirs(os.path.join(env.root, "blobs/sha256/ab"), mode=0o755, exist_ok=True)
    with open(os.path.join(env.root, extra), "wb") as fh:
        fh.write(b"x")
    os.chmod(os.path.join(env.root, extra), 0o644)
    r = run_cli("verify", env.root, "--metadata-dir", env.meta, "--json")
    assert r.returncode == 1
    res = json.loads(r.stdout)
    assert res["ok"] is False
    assert res["wrong_digest"] == sorted([layout.blob_path(blobs[0]), extra])
    assert res["missing"] == [missing]
    assert res["bad_modes"] == [layout.blob_path(blobs[2])]
    assert res["unreferenced"] == [extra]
    r = run_cli("verify", env.root, "--metadata-dir", env.meta)
    assert r.returncode == 1 and f"missing: {missing}" in r.stdout and "PROBLEMS FOUND" in r.stdout


def test_export_errors_are_one_line(env: Env, tmp_path) -> None:
    line = _one_line_error(run_cli(*env.cli_args(str(tmp_path / "nowhere"))))
    assert "is not a directory" in line
    line = _one_line_error(run_cli(*env.cli_args(name="Bad Name")))
    assert "invalid repository name" in line
    args = env.cli_args()
    args[args.index("--master-url") + 1] = "dl.example.org"
    assert "absolute http(s) URL" in _one_line_error(run_cli(*args))
    line = _one_line_error(run_cli(*env.cli_args(), "--protected"))
    assert "protected" in line
    assert not os.path.exists(env.root)


def test_prune_cli_and_bad_duration(env: Env) -> None:
    r = run_cli("prune", env.root, "--metadata-dir", env.meta, "--grace", "7x")
    assert r.returncode == 2 and "invalid duration" in r.stderr
    assert run_cli(*env.cli_args()).returncode == 0
    r = run_cli("prune", env.root, "--metadata-dir", env.meta, "--grace", "7d", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deleted"] == []


@pytest.mark.parametrize(
    ("text", "secs"), [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("5", 5)]
)
def test_durations(text: str, secs: int) -> None:
    assert parse_duration(text) == secs


BAD_URLS = [
    "https://user:pw@dl.example.org/pub/",
    "https://dl.example.org/pub containers/",
    "https://dl.example.org/pub/?x=1",
    "https://dl.example.org/pub/#top",
    "https://dl.example.org/pub/\u00e9/",
    "https://dl.example.org\\@evil.example.com/",
    "ftp://dl.example.org/pub/",
    "https:///pub/",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("option", ["--master-url", "--mirror-url"])
def test_export_refuses_urls_crane_refuses(env: Env, url: str, option: str) -> None:
    """Issue 13 item 3: the CLI applies crane's URL rule, so it never writes refused metadata."""
    args = env.cli_args()
    args[args.index(option) + 1] = url
    line = _one_line_error(run_cli(*args))
    assert "URL" in line and "pw" not in line  # a password is never echoed
    assert not os.path.exists(env.root) and not os.path.exists(env.meta)


@pytest.mark.parametrize("url", BAD_URLS)
def test_layout_and_crane_agree_on_urls(url: str) -> None:
    """One validator: what the exporter refuses, crane's parser refuses, and vice versa."""
    from crane_fedora.config import parse_config
    from crane_fedora.metadata.model import MetadataError
    from crane_fedora.metadata.native import _check_url

    with pytest.raises(layout.InvalidURL):
        layout.base_url(url)
    with pytest.raises(MetadataError):
        _check_url(url if url.endswith("/") else url + "/", "urls.master", parse_config(""))
    good = layout.base_url("https://dl.example.org/pub/containers")
    assert _check_url(good, "urls.master", parse_config("")) == good
