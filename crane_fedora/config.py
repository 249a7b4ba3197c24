"""Configuration: Crane's INI file (same sections, keys and defaults) plus crane_fedora's own keys.

Why a frozen dataclass and not Flask's ``app.config``: every value is validated once at startup
(a bad value is a :class:`ConfigError` naming the section and key, never a traceback) and the
request path reads plain attributes.
"""

from __future__ import annotations

import configparser
import fnmatch
import ipaddress
import logging
import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pulp_fedora_mirror.layout import url_problem

log = logging.getLogger(__name__)

ENV_PATH = "CRANE_CONFIG_PATH"
DEFAULT_PATH = "/etc/crane.conf"
HASH_ALGOS = ("sha256", "sha1", "md5")
DEFAULT_DATA_DIR = "/var/lib/crane/metadata/"
DEFAULT_CONTENT_DIR_V2 = "/var/www/pub/docker/v2/web/"
#: Binding key matching every prefix (dev, stg, prod) of the exporter's ``export.complete`` topic.
DEFAULT_NOTIFY_TOPIC = "#.pulp.fedora_mirror.export.complete"
DEFAULT_NOTIFY_EXCHANGE = "amq.topic"
#: AMQP short strings the broker accepts as exchange/queue names (RabbitMQ's rule, ≤ 255 bytes).
_AMQP_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,255}\Z")
_BINDING_WORD_RE = re.compile(r"^(?:[A-Za-z0-9_:-]+|\*|#)\Z")


class ConfigError(Exception):
    """A configuration problem, with a message fit for one line of a startup error."""


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform a list/index is resolved to for clients that accept no list type."""

    os: str
    architecture: str
    variant: str | None = None

    def matches(self, platform: dict | None) -> bool:
        """True if a list entry's ``platform`` object is this platform (variant only if set)."""
        if not isinstance(platform, dict):
            return False
        if platform.get("os") != self.os or platform.get("architecture") != self.architecture:
            return False
        return self.variant is None or platform.get("variant") == self.variant


@dataclass(frozen=True, slots=True)
class AllowRule:
    """``[protected] allow`` line: repositories matching ``pattern`` are readable by ``dn``."""

    pattern: str
    dn: str  # "*" = any verified client

    def permits(self, name: str, dn: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern) and (self.dn == "*" or self.dn == dn)


#: A key's parser: ``(value, "[section] key")`` → the typed value, or :class:`ConfigError`.
#: It is called only with a non-empty, stripped value (a missing or empty key takes the default).
Parser = Callable[[str, str], Any]


def _text(raw: str, where: str) -> str:
    return raw


def _boolean(raw: str, where: str) -> bool:
    try:
        return configparser.ConfigParser.BOOLEAN_STATES[raw.lower()]
    except KeyError:
        raise ConfigError(f"{where}: not a boolean: {raw!r}") from None


def _integer(minimum: int = 0) -> Parser:
    def parse(raw: str, where: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{where}: not an integer: {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{where}: must be >= {minimum}, got {value}")
        return value

    return parse


def _hex(raw: str, where: str) -> bytes:
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise ConfigError(f"{where}: not a hex string") from None


def _hash_algo(raw: str, where: str) -> str:
    algo = raw.lower()
    if algo not in HASH_ALGOS:
        raise ConfigError(f"{where}: must be one of {', '.join(HASH_ALGOS)}, got {algo!r}")
    return algo


def _header_name(raw: str, where: str) -> str:
    if not all(c.isalnum() or c == "-" for c in raw):
        raise ConfigError(f"{where}: not a header name: {raw!r}")
    return raw


def _platform(raw: str, where: str) -> Platform:
    parts = raw.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"{where}: expected os/arch[/variant], got {raw!r}")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _url_problem(raw: str, where: str) -> ConfigError | None:
    """The one URL rule (:func:`layout.url_problem`) as a config error; never echoes a URL with
    user info in it (it may hold a password)."""
    problem = url_problem(raw)
    if problem is None:
        return None
    return ConfigError(f"{where} {problem}" + ("" if "@" in raw else f": {raw!r}"))


def _url_prefixes(raw: str, where: str) -> tuple[str, ...]:
    """Parse the prefixes; a bare ``scheme://host[:port]`` gets its ``/``.

    Why: the check is ``url.startswith(prefix)``, so a host-only prefix
    ``https://dl.example.org`` also admitted ``https://dl.example.org.evil.com/``.
    """
    prefixes = []
    for p in raw.replace(",", " ").split():
        # A prefix with user info or a query could never match a redirect URL (layout.url_problem
        # refuses those in metadata), so it is refused here rather than silently allowing nothing.
        if (error := _url_problem(p, where)) is not None:
            raise error
        if "/" not in p.split("://", 1)[1]:
            p += "/"
        prefixes.append(p)
    return tuple(prefixes)


def _networks(raw: str, where: str) -> tuple:
    nets = []
    for item in raw.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{where}: not an address or CIDR: {item!r}") from None
    return tuple(nets)


def _allow(raw: str, where: str) -> tuple[AllowRule, ...]:
    rules = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, dn = line.partition(" ")
        dn = dn.strip()
        if not dn:
            raise ConfigError(f"{where}: expected '<repo glob> <client DN>' per line, got {line!r}")
        rules.append(AllowRule(pattern, dn))
    return tuple(rules)


def redact_url(url: str) -> str:
    """``url`` without its password, for log lines and error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _amqp_url(raw: str, where: str) -> str:
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{where}: not a URL: {redact_url(raw)!r}") from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(
            f"{where}: expected amqp://host[:port]/vhost or amqps://… (AMQP 0-9-1), got {redact_url(raw)!r}"
        )
    return raw


def _binding_key(raw: str, where: str) -> str:
    if len(raw) > 255 or not all(_BINDING_WORD_RE.match(w) for w in raw.split(".")):
        raise ConfigError(f"{where}: not an AMQP binding key (dot-separated words, * or #): {raw!r}")
    return raw


def _exchange(raw: str, where: str) -> str:
    if not _AMQP_NAME_RE.match(raw):
        raise ConfigError(f"{where}: not an exchange name: {raw!r}")
    return raw


def _queue(raw: str, where: str) -> str:
    try:
        sample = raw.format(pid=99999, host="h")
    except (KeyError, IndexError, ValueError, AttributeError):
        raise ConfigError(f"{where}: only {{pid}} and {{host}} are substituted: {raw!r}") from None
    if not _AMQP_NAME_RE.match(sample) or sample.startswith("amq."):
        raise ConfigError(f"{where}: not a queue name (letters, digits, -_.:, not amq.*): {raw!r}")
    return raw


def _registry_url(raw: str, where: str) -> str:
    """``[flatpak] registry_url``: an absolute http(s) URL or an absolute path (empty: ``/``).

    Why never the Host header: the index is cached (by crane, by proxies, by clients), so a
    value taken from one request would be served to everyone; a relative ``/`` lets each client
    resolve it against the host it really talked to.
    """
    if raw.startswith("/"):
        if (
            raw.startswith("//")
            or not raw.isascii()
            or not raw.isprintable()
            or any(c in raw for c in " ?#\\")
        ):
            raise ConfigError(f"{where}: not a usable absolute path: {raw!r}")
    elif (error := _url_problem(raw, where)) is not None:
        raise error
    return raw if raw.endswith("/") else raw + "/"


#: A registry name as users type it: host[:port] (DNS name, IPv4 or [IPv6]); shell- and HTML-safe.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_REGISTRY_RE = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?\Z")
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def is_registry_name(value: str) -> bool:
    """True for ``host[:port]``: the only shape a pull command's registry part may take."""
    return len(value) <= 261 and bool(_REGISTRY_RE.match(value))


def _registry_name(raw: str, where: str) -> str:
    """The registry name ends up in shell commands users paste: host[:port] only."""
    if not is_registry_name(raw):
        raise ConfigError(f"{where}: expected host[:port], got {raw!r}")
    return raw


def _remote_name(raw: str, where: str) -> str:
    if not _REMOTE_RE.match(raw):
        raise ConfigError(f"{where}: not a remote name (letters, digits, _.-): {raw!r}")
    return raw


def _http_url(raw: str, where: str) -> str:
    """``[ui] signing_key`` and ``lookaside``: shown on ``/help`` in commands users paste, and the
    lookaside is a base that clients append paths to, so the redirect-base rule fits both (no user
    info to leak, no query or fragment to break the pasted command or the appended paths)."""
    if (error := _url_problem(raw, where)) is not None:
        raise error
    return raw


def _ui_page_size(raw: str, where: str) -> int:
    value = _integer(minimum=1)(raw, where)
    if value > 1000:
        raise ConfigError(f"{where}: at most 1000, got {value}")
    return value


def setting(section: str, key: str, default: Any, parse: Parser = _text) -> Any:
    """Declare one INI key as a :class:`Config` field: the one place its section, name, default and
    parser are written. The known-key table and :func:`parse_config` are derived from these."""
    return field(default=default, metadata={"ini": (section, key, parse)})


@dataclass(frozen=True, slots=True)
class Config:
    """All settings, validated. Defaults are Crane's where Crane had the key.

    Adding a key is one line here: ``name: type = setting("section", "key", default, parser)``.
    """

    # [general]
    debug: bool = setting("general", "debug", False, _boolean)
    data_dir: str = setting("general", "data_dir", DEFAULT_DATA_DIR)
    data_dir_polling_interval: int = setting("general", "data_dir_polling_interval", 60, _integer())
    endpoint: str = setting("general", "endpoint", "")
    #: bytes; a larger metadata file is rejected unread (its last good version stays)
    max_metadata_size: int = setting("general", "max_metadata_size", 64 * 1024 * 1024, _integer(minimum=1))
    # [cdn]
    url_match: str = setting("cdn", "url_match", "")
    url_replace: str = setting("cdn", "url_replace", "")
    url_auth_secret: bytes | None = setting("cdn", "url_auth_secret", None, _hex)
    url_auth_ttl: int = setting("cdn", "url_auth_ttl", 300, _integer(minimum=1))
    url_auth_param: str = setting("cdn", "url_auth_param", "_auth_")
    url_auth_algo: str = setting("cdn", "url_auth_algo", "sha256", _hash_algo)
    # [serve_content]
    serve_content: bool = setting("serve_content", "enable", False, _boolean)
    content_dir_v2: str = setting("serve_content", "content_dir_v2", DEFAULT_CONTENT_DIR_V2)
    use_x_sendfile: bool = setting("serve_content", "use_x_sendfile", True, _boolean)
    # [mirrors]
    settle_seconds: int = setting("mirrors", "settle_seconds", 86400, _integer())
    allowed_url_prefixes: tuple[str, ...] = setting("mirrors", "allowed_url_prefixes", (), _url_prefixes)
    # [registry]
    catalog: bool = setting("registry", "catalog", True, _boolean)
    page_size_max: int = setting("registry", "page_size_max", 1000, _integer(minimum=1))
    default_platform: Platform = setting(
        "registry", "default_platform", Platform("linux", "amd64"), _platform
    )
    fast_path: bool = setting("registry", "fast_path", True, _boolean)
    #: Advertise ``X-Registry-Supports-Signatures: 1`` on ``/v2/``. containers/image then asks crane
    #: for signatures even when a lookaside is configured; off sends that traffic to the mirrors
    #: (users then need a registries.d ``lookaside:``), see docs/signatures.md.
    signatures_extension: bool = setting("registry", "signatures_extension", True, _boolean)
    # [protected]
    dn_header: str = setting("protected", "dn_header", "X-SSL-Client-DN", _header_name)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        "protected", "trusted_proxies", (), _networks
    )
    allow: tuple[AllowRule, ...] = setting("protected", "allow", (), _allow)
    # [notifications]: instant reload from export.complete messages (empty URL = off)
    notify_amqp_url: str = setting("notifications", "amqp_url", "", _amqp_url)
    notify_topic: str = setting("notifications", "topic", DEFAULT_NOTIFY_TOPIC, _binding_key)
    notify_exchange: str = setting("notifications", "exchange", DEFAULT_NOTIFY_EXCHANGE, _exchange)
    notify_queue: str = setting("notifications", "queue", "", _queue)
    notify_ca_cert: str = setting("notifications", "ca_cert", "")
    notify_certfile: str = setting("notifications", "certfile", "")
    notify_keyfile: str = setting("notifications", "keyfile", "")
    notify_reconnect_max_delay: int = setting("notifications", "reconnect_max_delay", 30, _integer(minimum=1))
    # [ui]: the browsable home page (docs/ui.md)
    ui_enable: bool = setting("ui", "enable", True, _boolean)
    #: public registry name for pull commands; empty: ``[general] endpoint``, else the request's Host
    ui_registry: str = setting("ui", "registry", "", _registry_name)
    ui_page_size: int = setting("ui", "page_size", 100, _ui_page_size)
    ui_max_age: int = setting("ui", "max_age", 60, _integer())
    ui_flatpak_remote: str = setting("ui", "flatpak_remote", "fedora", _remote_name)
    #: URL of the public GPG key that signs the images (help page); empty: no signature section
    ui_signing_key: str = setting("ui", "signing_key", "", _http_url)
    #: lookaside (sigstore) URL for registries.d; empty: ``<urls.master>signatures`` if all agree
    ui_lookaside: str = setting("ui", "lookaside", "", _http_url)
    # [flatpak]: the registry index (docs/flatpak.md)
    flatpak_index: bool = setting("flatpak", "index", True, _boolean)
    #: the index's "Registry" value; "/" (the default, also for an empty registry_url) is relative:
    #: the client resolves it against the URL it fetched the index from, so no Host header is used
    flatpak_registry: str = setting("flatpak", "registry_url", "/", _registry_url)
    flatpak_max_age: int = setting("flatpak", "max_age", 300, _integer())
    # [metrics]: GET /metrics (Prometheus text format) on the same port
    metrics: bool = setting("metrics", "enable", True, _boolean)

    @property
    def dn_environ_key(self) -> str:
        """WSGI environ key of :attr:`dn_header` (``X-SSL-Client-DN`` → ``HTTP_X_SSL_CLIENT_DN``)."""
        return "HTTP_" + self.dn_header.upper().replace("-", "_")


#: (field name, section, key, parser) of every key, from the declarations above.
_SETTINGS: tuple[tuple[str, str, str, Parser], ...] = tuple(
    (f.name, *f.metadata["ini"]) for f in fields(Config) if "ini" in f.metadata
)
#: Section → its keys, for the typo warning and the packaged default.conf test.
_KNOWN: dict[str, frozenset[str]] = {
    section: frozenset(k for _, s, k, _ in _SETTINGS if s == section) for _, section, _, _ in _SETTINGS
}
#: Keys Crane knew that crane_fedora accepts and ignores (the v1 API and its search are gone).
_IGNORED = {
    "serve_content": {"content_dir_v1"},
    "gsa": None,  # None: the whole section
    "solr": None,
}


def _check_known(cp: configparser.ConfigParser) -> None:
    """Warn about typos instead of silently ignoring them."""
    for section in cp.sections():
        if section in _IGNORED and _IGNORED[section] is None:
            log.info("config: [%s] is ignored (the v1 API and its search are not served)", section)
            continue
        known = _KNOWN.get(section)
        if known is None:
            log.warning("config: unknown section [%s] ignored", section)
            continue
        for key in cp.options(section):
            if key in _IGNORED.get(section, set()):
                log.info("config: [%s] %s is ignored (v1 API not served)", section, key)
            elif key not in known:
                log.warning("config: unknown key [%s] %s ignored", section, key)


def _check_together(cfg: Config) -> None:
    """Rules that tie several keys together (each key alone was checked by its parser).

    Why so strict for ``[notifications]``: a listener that silently binds the wrong key or talks
    plain AMQP where TLS was meant would look like "instant reload does not work" long after startup.
    """
    if bool(cfg.url_match) != bool(cfg.url_replace):
        raise ConfigError("[cdn] url_match and url_replace must be set together")
    tls = {"ca_cert": cfg.notify_ca_cert, "certfile": cfg.notify_certfile, "keyfile": cfg.notify_keyfile}
    url = cfg.notify_amqp_url
    if url and urllib.parse.urlsplit(url).scheme == "amqp" and any(tls.values()):
        raise ConfigError("[notifications] ca_cert/certfile/keyfile need an amqps:// amqp_url")
    if tls["keyfile"] and not tls["certfile"]:
        raise ConfigError("[notifications] keyfile needs certfile")
    if url:
        for key, path in tls.items():
            if path and not os.path.isfile(path):
                raise ConfigError(f"[notifications] {key}: no such file: {path}")


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate INI text into a :class:`Config`; raise :class:`ConfigError` on any bad value.

    A missing or empty key takes its default; any other value goes through the key's parser.
    """
    cp = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        cp.read_string(text, source=source)
    except configparser.Error as exc:
        raise ConfigError(f"{source}: not a valid INI file: {str(exc).splitlines()[0]}") from None
    _check_known(cp)
    values: dict[str, Any] = {}
    for name, section, key, parse in _SETTINGS:
        raw = cp.get(section, key, fallback="").strip()
        if raw:
            values[name] = parse(raw, f"[{section}] {key}")
    if os.environ.get("CRANE_DEBUG", "").lower() == "true":
        values["debug"] = True
    cfg = Config(**values)
    _check_together(cfg)
    return cfg


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read ``path``, else ``$CRANE_CONFIG_PATH``, else ``/etc/crane.conf`` (which may be missing)."""
    explicit = path is not None or bool(os.environ.get(ENV_PATH))
    chosen = Path(path if path is not None else os.environ.get(ENV_PATH) or DEFAULT_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {chosen} does not exist") from None
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {chosen} cannot be read: {exc}") from None
    return parse_config(text, source=str(chosen))
