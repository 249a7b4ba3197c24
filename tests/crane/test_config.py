"""Config: Crane's keys and defaults, the new keys, and clear errors for bad values."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from crane_fedora import config as cfgmod
from crane_fedora.app import create_app
from crane_fedora.config import Config, ConfigError, Platform, load_config, parse_config


def test_crane_defaults():
    c = parse_config("")
    assert c.debug is False
    assert c.data_dir == "/var/lib/crane/metadata/"
    assert c.data_dir_polling_interval == 60
    assert c.endpoint == ""
    assert c.serve_content is False and c.use_x_sendfile is True
    assert c.content_dir_v2 == "/var/www/pub/docker/v2/web/"
    assert (c.url_match, c.url_replace, c.url_auth_secret) == ("", "", None)
    assert (c.url_auth_ttl, c.url_auth_param, c.url_auth_algo) == (300, "_auth_", "sha256")


def test_new_defaults():
    c = parse_config("")
    assert c.settle_seconds == 86400
    assert c.allowed_url_prefixes == ()
    assert c.catalog is True and c.page_size_max == 1000
    assert c.default_platform == Platform("linux", "amd64")
    assert c.dn_header == "X-SSL-Client-DN" and c.trusted_proxies == () and c.allow == ()


def test_general_without_debug_works():  # Crane crashed with NoOptionError here
    c = parse_config("[general]\ndata_dir: /srv/crane/metadata/\n")
    assert c.debug is False and c.data_dir == "/srv/crane/metadata/"


def test_crane_minimal_config_colon_syntax():
    c = parse_config("[general]\ndebug: false\ndata_dir: /srv/x/\ndata_dir_polling_interval: 60\nendpoint:\n")
    assert c.data_dir == "/srv/x/" and c.endpoint == ""


def test_all_new_keys():
    c = parse_config(
        "[mirrors]\nsettle_seconds = 0\nallowed_url_prefixes = https://a.example/ https://b.example/x/\n"
        "[registry]\ncatalog = off\npage_size_max = 50\ndefault_platform = linux/arm64/v8\nfast_path = no\n"
        "[protected]\ndn_header = X-Client-DN\ntrusted_proxies = 10.0.0.1, 2001:db8::/32\n"
        "allow =\n  secret/* CN=a,O=B C\n  other *\n"
        "[serve_content]\nenable = yes\ncontent_dir_v2 = /srv/web\nuse_x_sendfile = false\n"
    )
    assert c.settle_seconds == 0
    assert c.allowed_url_prefixes == ("https://a.example/", "https://b.example/x/")
    assert (c.catalog, c.page_size_max, c.fast_path) == (False, 50, False)
    assert c.default_platform == Platform("linux", "arm64", "v8")
    assert c.dn_environ_key == "HTTP_X_CLIENT_DN"
    assert ipaddress.ip_address("10.0.0.1") in c.trusted_proxies[0]
    assert [(r.pattern, r.dn) for r in c.allow] == [("secret/*", "CN=a,O=B C"), ("other", "*")]
    assert (c.serve_content, c.content_dir_v2, c.use_x_sendfile) == (True, "/srv/web", False)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[general]\ndebug = maybe\n", "[general] debug"),
        ("[general]\ndata_dir_polling_interval = often\n", "[general] data_dir_polling_interval"),
        ("[general]\ndata_dir_polling_interval = -5\n", "[general] data_dir_polling_interval"),
        ("[cdn]\nurl_auth_secret = xyz\n", "[cdn] url_auth_secret"),
        ("[cdn]\nurl_auth_algo = sha3\n", "[cdn] url_auth_algo"),
        ("[cdn]\nurl_auth_ttl = 0\n", "[cdn] url_auth_ttl"),
        ("[cdn]\nurl_match = a\n", "[cdn] url_match"),
        ("[mirrors]\nsettle_seconds = 1d\n", "[mirrors] settle_seconds"),
        ("[mirrors]\nallowed_url_prefixes = ftp://x/\n", "[mirrors] allowed_url_prefixes"),
        # No redirect URL can carry user info or a query (layout.url_problem), so such a prefix
        # could never match: refused at start-up rather than silently allowing nothing.
        ("[mirrors]\nallowed_url_prefixes = https://u:p@a.example/\n", "prefixes must not contain user"),
        ("[mirrors]\nallowed_url_prefixes = https://a.example/?x=1\n", "prefixes must not contain a query"),
        ("[registry]\ncatalog = sometimes\n", "[registry] catalog"),
        ("[registry]\npage_size_max = 0\n", "[registry] page_size_max"),
        ("[registry]\ndefault_platform = amd64\n", "[registry] default_platform"),
        ("[protected]\ntrusted_proxies = 10.0.0.300\n", "[protected] trusted_proxies"),
        ("[protected]\nallow = secret/*\n", "[protected] allow"),
        ("[protected]\ndn_header = X SSL\n", "[protected] dn_header"),
        ("[serve_content]\nenable = 2\n", "[serve_content] enable"),
        ("not an ini file\n", "not a valid INI file"),
        ("[notifications]\namqp_url = http://broker/\n", "[notifications] amqp_url"),
        ("[notifications]\namqp_url = amqp1+amqp://broker/\n", "[notifications] amqp_url"),
        ("[notifications]\namqp_url = amqp://:5672/\n", "[notifications] amqp_url"),
        ("[notifications]\namqp_url = amqp://h:port/\n", "[notifications] amqp_url"),
        ("[notifications]\namqp_url = amqp://h/\ncertfile = /c.pem\n", "[notifications] ca_cert/certfile"),
        ("[notifications]\namqp_url = amqps://h/\nca_cert = /no/such.pem\n", "[notifications] ca_cert"),
        ("[notifications]\nkeyfile = /k.pem\n", "[notifications] keyfile"),
        ("[notifications]\ntopic = a..b\n", "[notifications] topic"),
        ("[notifications]\ntopic = org.fedora*.x\n", "[notifications] topic"),
        ("[notifications]\nexchange = my exchange\n", "[notifications] exchange"),
        ("[notifications]\nqueue = crane-{worker}\n", "[notifications] queue"),
        ("[notifications]\nqueue = amq.crane\n", "[notifications] queue"),
        ("[notifications]\nqueue = a/b\n", "[notifications] queue"),
        ("[notifications]\nreconnect_max_delay = 0\n", "[notifications] reconnect_max_delay"),
    ],
)
def test_bad_values_name_section_and_key(text, where):
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert where in str(exc.value)
    assert "\n" not in str(exc.value)


def test_notifications_defaults_and_keys(tmp_path):
    c = parse_config("")
    assert c.notify_amqp_url == ""  # off
    assert (c.notify_topic, c.notify_exchange, c.notify_queue) == (
        "#.pulp.fedora_mirror.export.complete",
        "amq.topic",
        "",
    )
    assert c.notify_reconnect_max_delay == 30
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    c = parse_config(
        "[notifications]\namqp_url = amqps://broker.example:5671/%2Fpubsub\n"
        "topic = org.fedoraproject.prod.pulp.fedora_mirror.*.complete\nexchange = my.topic-x\n"
        f"queue = crane-{{host}}-{{pid}}\nca_cert = {tmp_path}/ca.pem\ncertfile = {tmp_path}/c.pem\n"
        f"keyfile = {tmp_path}/k.pem\nreconnect_max_delay = 5\n"
    )
    assert c.notify_amqp_url == "amqps://broker.example:5671/%2Fpubsub"
    assert c.notify_topic == "org.fedoraproject.prod.pulp.fedora_mirror.*.complete"
    assert (c.notify_exchange, c.notify_queue) == ("my.topic-x", "crane-{host}-{pid}")
    assert (c.notify_ca_cert, c.notify_certfile, c.notify_keyfile) == (
        f"{tmp_path}/ca.pem",
        f"{tmp_path}/c.pem",
        f"{tmp_path}/k.pem",
    )
    assert c.notify_reconnect_max_delay == 5


def test_notifications_errors_hide_the_password():
    with pytest.raises(ConfigError) as exc:
        parse_config("[notifications]\namqp_url = http://user:s3cret@broker/\n")
    assert "s3cret" not in str(exc.value) and "user:***@broker" in str(exc.value)


def test_unknown_keys_warn(caplog):
    parse_config("[general]\ndata_dri = /x\n[bogus]\na = 1\n[gsa]\nurl = http://x\n")
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "data_dri" in msgs and "[bogus]" in msgs


def test_env_path_and_missing_files(tmp_path, monkeypatch):
    p = tmp_path / "crane.conf"
    p.write_text("[general]\ndata_dir = /srv/from-env/\n")
    monkeypatch.setenv("CRANE_CONFIG_PATH", str(p))
    assert load_config().data_dir == "/srv/from-env/"
    monkeypatch.setenv("CRANE_CONFIG_PATH", str(tmp_path / "missing.conf"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config()
    monkeypatch.delenv("CRANE_CONFIG_PATH")
    monkeypatch.setattr(cfgmod, "DEFAULT_PATH", str(tmp_path / "etc-crane.conf"))
    assert load_config() == Config()  # missing /etc/crane.conf is fine
    with pytest.raises(ConfigError):
        create_app(str(tmp_path / "missing.conf"))


def test_crane_debug_env(monkeypatch):
    monkeypatch.setenv("CRANE_DEBUG", "TRUE")
    assert parse_config("").debug is True
    monkeypatch.setenv("CRANE_DEBUG", "yes")
    assert parse_config("").debug is False


def test_wsgi_bad_config_one_line_and_nonzero(tmp_path):
    p = tmp_path / "crane.conf"
    p.write_text("[general]\ndata_dir_polling_interval = soon\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import crane_fedora.wsgi"],
        capture_output=True,
        text=True,
        env={"CRANE_CONFIG_PATH": str(p), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 3  # gunicorn's WORKER_BOOT_ERROR
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "crane_fedora: configuration error: [general] data_dir_polling_interval: not an integer: 'soon'"
    ]


def test_wsgi_good_config(tmp_path):
    p = tmp_path / "crane.conf"
    p.write_text(f"[general]\ndata_dir = {tmp_path}\n")
    code = "import crane_fedora.wsgi as w; print(type(w.application).__name__)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"CRANE_CONFIG_PATH": str(p), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Flask"


def test_packaged_default_conf_matches_defaults():
    path = Path(__file__).resolve().parents[2] / "crane_fedora" / "default.conf"
    assert load_config(path) == Config()
    text = path.read_text()
    for section, keys in cfgmod._KNOWN.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"# {key} =" in text, key


def test_every_setting_is_one_declaration():
    """Each Config field names its own INI key; the known-key table and the parser derive from it."""
    from dataclasses import fields

    declared = [f.metadata["ini"][:2] for f in fields(Config)]
    assert len(declared) == len(fields(Config))  # no field without its key
    assert len(set(declared)) == len(declared)  # no key declared twice
    assert {s: set(k) for s, k in cfgmod._KNOWN.items()} == {
        s: {k for s2, k in declared if s2 == s} for s, _ in declared
    }
    # a non-default value for every key reaches its field through parse_config alone
    cfg = parse_config("[registry]\npage_size_max = 7\n[notifications]\nreconnect_max_delay = 9\n")
    assert (cfg.page_size_max, cfg.notify_reconnect_max_delay) == (7, 9)


def test_gunicorn_multi_worker_bad_config_exits_3_with_one_line(tmp_path):
    """Issue 13 item 6: the documented ``gunicorn -w 4`` command, real gunicorn, a bad config.

    Before: every worker printed the error, and often two exited 3 while the master halted,
    which made gunicorn raise HaltServer inside its own shutdown (tracebacks, exit status 1).
    Several runs, because that part was a race.
    """
    from tests.harness.ports import free_port

    p = tmp_path / "crane.conf"
    p.write_text("[general]\ndata_dir_polling_interval = soon\n")
    base = [sys.executable, "-m", "gunicorn", "-w", "4", "-k", "gthread", "--threads", "8"]
    help_text = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=60).stdout
    if "--no-control-socket" in help_text:  # gunicorn >= 26: no shared ~/.gunicorn socket
        base.append("--no-control-socket")
    for _ in range(3):
        proc = subprocess.run(
            [*base, "-b", f"127.0.0.1:{free_port()}", "crane_fedora.wsgi:application"],
            capture_output=True,
            text=True,
            env={"CRANE_CONFIG_PATH": str(p), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
            cwd=Path(__file__).resolve().parents[2],
            timeout=120,
        )
        output = proc.stdout + proc.stderr
        assert "Traceback" not in output, output
        assert proc.returncode == 3, output
        ours = [ln for ln in output.splitlines() if ln.startswith("crane_fedora:")]
        assert ours == [
            "crane_fedora: configuration error: [general] data_dir_polling_interval: not an integer: 'soon'"
        ], output
