"""Client and CLI behaviour that needs no Pulp: configuration, arguments, unreachable servers.

"Unreachable" is real: a loopback port nobody listens on refuses the connection.
"""

from __future__ import annotations

import io
import time

import pytest

from pulp_fedora_mirror.cli.pulp import ProgressPrinter
from pulp_fedora_mirror.client import (
    PulpClient,
    PulpConfigError,
    PulpUnreachable,
    Task,
    load_config,
)
from tests.harness.ports import free_port

from .helpers import assert_one_line_error, run_cli


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "--from", "cand", "--to", "stable", "--tag", "latest"],
        ["publish", "--repository", "stable", "--exporter", "mirror"],
        ["release", "--from", "cand", "--to", "stable", "--tag", "a", "--exporter", "mirror"],
    ],
)
def test_unreachable_pulp_is_exit_4_one_line(tmp_path, closed_url, argv) -> None:
    t0 = time.monotonic()
    r = run_cli(*argv, "--pulp-url", closed_url, home=str(tmp_path))
    assert time.monotonic() - t0 < 20
    assert_one_line_error(r, 4, f"cannot reach Pulp at {closed_url}", "Connection refused")


def test_client_unreachable_raises_typed_error(closed_url) -> None:
    client = PulpClient(base_url=closed_url, env={})
    with pytest.raises(PulpUnreachable, match="Connection refused") as info:
        client.find_repository("x")
    assert info.value.exit_code == 4
    assert "\n" not in str(info.value)


def test_no_url_is_a_config_error(tmp_path) -> None:
    r = run_cli("publish", "--repository", "s", "--exporter", "e", home=str(tmp_path))
    assert_one_line_error(r, 2, "no Pulp URL")


@pytest.mark.parametrize("url", ["ftp://pulp", "pulp.example.org", "http://"])
def test_bad_url_is_a_config_error(tmp_path, url) -> None:
    r = run_cli("publish", "--repository", "s", "--exporter", "e", "--pulp-url", url, home=str(tmp_path))
    assert_one_line_error(r, 2, "invalid Pulp URL")


def test_missing_files_are_config_errors(tmp_path, closed_url) -> None:
    base = ["publish", "--repository", "s", "--exporter", "e", "--pulp-url", closed_url]
    r = run_cli(*base, "--config", str(tmp_path / "nope.toml"), home=str(tmp_path))
    assert_one_line_error(r, 2, "config file not found")
    r = run_cli(*base, "--ca-bundle", str(tmp_path / "ca.pem"), home=str(tmp_path))
    assert_one_line_error(r, 2, "CA bundle not found")
    r = run_cli(*base, "--key", str(tmp_path / "k.pem"), home=str(tmp_path))
    assert_one_line_error(r, 2, "client key was given without a client certificate")
    r = run_cli(*base, "--timeout", "0", home=str(tmp_path))
    assert_one_line_error(r, 2, "--timeout must be positive")


def test_argument_errors_are_usage_errors(tmp_path) -> None:
    r = run_cli("promote", "--from", "a", "--to", "b", home=str(tmp_path))  # no --tag
    assert r.returncode == 2 and "--tag" in r.stderr and "Traceback" not in r.stderr


def test_config_file_toml_ini_env_and_args(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n")
    toml = tmp_path / "pulp.toml"
    toml.write_text(
        f'[pulp]\nbase_url = "https://file:1"\nusername = "bodhi"\npassword = "p"\nca_bundle = "{ca}"\n'
    )
    cfg = load_config(toml, env={})
    assert (cfg.base_url, cfg.username, cfg.password, cfg.ca_bundle) == (
        "https://file:1",
        "bodhi",
        "p",
        str(ca),
    )
    assert cfg.api_url == "https://file:1/pulp/api/v3/"
    # pulp-cli's own cli.toml works too
    cli_toml = tmp_path / "cli.toml"
    cli_toml.write_text('[cli]\nbase_url = "http://cli:2"\nusername = "admin"\npassword = "x"\n')
    assert load_config(cli_toml, env={}).base_url == "http://cli:2"
    ini = tmp_path / "pulp.ini"
    ini.write_text("[pulp]\nurl = http://ini:3\nusername = u\ntimeout = 7\n")
    icfg = load_config(ini, env={})
    assert (icfg.base_url, icfg.username, icfg.request_timeout) == ("http://ini:3", "u", 7.0)
    env = {"PULP_URL": "http://env:4", "PULP_PASSWORD": "envpw"}
    ecfg = load_config(toml, env=env)
    assert (ecfg.base_url, ecfg.username, ecfg.password) == ("http://env:4", "bodhi", "envpw")
    assert load_config(toml, env=env, base_url="http://arg:5").base_url == "http://arg:5"
    bad = tmp_path / "bad.conf"
    bad.write_text("just words\n")
    with pytest.raises(PulpConfigError, match="neither TOML nor INI"):
        load_config(bad, env={})


def test_default_config_file_in_home(tmp_path, closed_url) -> None:
    conf = tmp_path / ".config" / "fedora-mirror"
    conf.mkdir(parents=True)
    (conf / "pulp.toml").write_text(f'base_url = "{closed_url}"\n')
    r = run_cli("publish", "--repository", "s", "--exporter", "e", home=str(tmp_path))
    assert_one_line_error(r, 4, f"cannot reach Pulp at {closed_url}")
    r = run_cli(
        "publish", "--repository", "s", "--exporter", "e", home=str(tmp_path), env={"PULP_URL": "bad"}
    )
    assert_one_line_error(r, 2, "invalid Pulp URL 'bad'")


def _task(state: str, done: int, total: int | None, rstate: str = "running") -> Task:
    return Task(
        "/pulp/api/v3/tasks/0190-abc/",
        {
            "state": state,
            "progress_reports": [
                {
                    "message": "Exporting blobs",
                    "code": "fedora_mirror.blobs",
                    "done": done,
                    "total": total,
                    "state": rstate,
                }
            ],
        },
    )


def test_progress_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    p = ProgressPrinter(out, tty=False)
    p(_task("waiting", 0, None, "waiting"))
    p(_task("running", 1, 4))
    p(_task("running", 1, 4))  # unchanged: nothing new
    p(_task("completed", 4, 4, "completed"))
    lines = out.getvalue().splitlines()
    assert lines[0] == "task 0190-abc: waiting"
    assert "task 0190-abc: running" in lines
    assert lines[-1] == "  Exporting blobs: 4/4 (completed)"
    assert "\r" not in out.getvalue()


def test_progress_bar_on_a_tty() -> None:
    out = io.StringIO()
    p = ProgressPrinter(out, tty=True)
    p(_task("running", 2, 4))
    p(_task("completed", 4, 4, "completed"))
    text = out.getvalue()
    assert "\r  Exporting blobs" in text
    assert "[###############...............] 2/4" in text
    assert "[##############################] 4/4" in text
    assert text.endswith("\n")


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_password_in_pulp_url_is_never_printed(closed_url, scheme) -> None:
    """A URL with user:password@ is refused, and no error message repeats the password."""
    url = closed_url.replace("http://", f"{scheme}://bodhi:s3cret-pw@")
    with pytest.raises(PulpConfigError) as info:
        PulpClient(base_url=url, env={}).find_repository("x")
    assert "s3cret-pw" not in str(info.value)
    assert "username" in str(info.value) or "invalid Pulp URL" in str(info.value)
