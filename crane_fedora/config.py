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
from dataclasses import dataclass, field
from pathlib import Path

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

#: Keys Crane knew that crane_fedora accepts and ignores (the v1 API and its search are gone).
_IGNORED = {
    "serve_content": {"content_dir_v1"},
    "gsa": None,  # None: the whole section
    "solr": None,
}
_KNOWN = {
    "general": {"debug", "data_dir", "data_dir_polling_interval", "endpoint"},
    "cdn": {"url_match", "url_replace", "url_auth_secret", "url_auth_ttl", "url_auth_param", "url_auth_algo"},
    "serve_content": {"enable", "content_dir_v2", "use_x_sendfile"},
    "mirrors": {"settle_seconds", "allowed_url_prefixes"},
    "registry": {"catalog", "page_size_max", "default_platform", "fast_path"},
    "protected": {"dn_header", "trusted_proxies", "allow"},
    "notifications": {
        "amqp_url",
        "topic",
        "exchange",
        "queue",
        "ca_cert",
        "certfile",
        "keyfile",
        "reconnect_max_delay",
    },
    "ui": {"enable", "registry", "page_size", "max_age", "flatpak_remote", "signing_key", "lookaside"},
}


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


#: A registry name as users type it: host[:port] (DNS name, IPv4 or [IPv6]); shell- and HTML-safe.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_REGISTRY_RE = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?\Z")
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def is_registry_name(value: str) -> bool:
    """True for ``host[:port]``: the only shape a pull command's registry part may take."""
    return len(value) <= 261 and bool(_REGISTRY_RE.match(value))


@dataclass(frozen=True, slots=True)
class UiConfig:
    """``[ui]``: the browsable home page (docs/ui.md)."""

    enable: bool = True
    #: public registry name for pull commands; empty: ``[general] endpoint``, else the request's Host
    registry: str = ""
    page_size: int = 100
    max_age: int = 60
    flatpak_remote: str = "fedora"
    #: URL of the public GPG key that signs the images (help page); empty: no signature section
    signing_key: str = ""
    #: lookaside (sigstore) URL for registries.d; empty: ``<urls.master>signatures`` if all agree
    lookaside: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    """All settings, validated. Defaults are Crane's where Crane had the key."""

    debug: bool = False
    data_dir: str = DEFAULT_DATA_DIR
    data_dir_polling_interval: int = 60
    endpoint: str = ""
    # [cdn]
    url_match: str = ""
    url_replace: str = ""
    url_auth_secret: bytes | None = None
    url_auth_ttl: int = 300
    url_auth_param: str = "_auth_"
    url_auth_algo: str = "sha256"
    # [serve_content]
    serve_content: bool = False
    content_dir_v2: str = DEFAULT_CONTENT_DIR_V2
    use_x_sendfile: bool = True
    # [mirrors]
    settle_seconds: int = 86400
    allowed_url_prefixes: tuple[str, ...] = ()
    # [registry]
    catalog: bool = True
    page_size_max: int = 1000
    default_platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    fast_path: bool = True
    # [protected]
    dn_header: str = "X-SSL-Client-DN"
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allow: tuple[AllowRule, ...] = ()
    # [notifications]: instant reload from export.complete messages (empty URL = off)
    notify_amqp_url: str = ""
    notify_topic: str = DEFAULT_NOTIFY_TOPIC
    notify_exchange: str = DEFAULT_NOTIFY_EXCHANGE
    notify_queue: str = ""
    notify_ca_cert: str = ""
    notify_certfile: str = ""
    notify_keyfile: str = ""
    notify_reconnect_max_delay: int = 30
    # [ui]
    ui: UiConfig = field(default_factory=UiConfig)

    @property
    def dn_environ_key(self) -> str:
        """WSGI environ key of :attr:`dn_header` (``X-SSL-Client-DN`` → ``HTTP_X_SSL_CLIENT_DN``)."""
        return "HTTP_" + self.dn_header.upper().replace("-", "_")


def _bool(cp: configparser.ConfigParser, section: str, key: str, default: bool) -> bool:
    if not cp.has_option(section, key):
        return default
    raw = cp.get(section, key).strip()
    if raw == "":
        return default
    try:
        return cp.getboolean(section, key)
    except ValueError:
        raise ConfigError(f"[{section}] {key}: not a boolean: {raw!r}") from None


def _int(cp: configparser.ConfigParser, section: str, key: str, default: int, minimum: int = 0) -> int:
    if not cp.has_option(section, key):
        return default
    raw = cp.get(section, key).strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"[{section}] {key}: not an integer: {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"[{section}] {key}: must be >= {minimum}, got {value}")
    return value


def _str(cp: configparser.ConfigParser, section: str, key: str, default: str) -> str:
    if not cp.has_option(section, key):
        return default
    return cp.get(section, key).strip()


def _platform(raw: str) -> Platform:
    parts = raw.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"[registry] default_platform: expected os/arch[/variant], got {raw!r}")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _url_prefixes(raw: str) -> tuple[str, ...]:
    """Parse the prefixes; a bare ``scheme://host[:port]`` gets its ``/``.

    Why: the check is ``url.startswith(prefix)``, so a host-only prefix
    ``https://dl.example.org`` also admitted ``https://dl.example.org.evil.com/``.
    """
    prefixes = []
    for p in raw.replace(",", " ").split():
        if not (p.startswith("https://") or p.startswith("http://")):
            raise ConfigError(f"[mirrors] allowed_url_prefixes: not an http(s) URL: {p!r}")
        if "/" not in p.split("://", 1)[1]:
            p += "/"
        prefixes.append(p)
    return tuple(prefixes)


def _networks(raw: str) -> tuple:
    nets = []
    for item in raw.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"[protected] trusted_proxies: not an address or CIDR: {item!r}") from None
    return tuple(nets)


def _allow(raw: str) -> tuple[AllowRule, ...]:
    rules = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, dn = line.partition(" ")
        dn = dn.strip()
        if not dn:
            raise ConfigError(f"[protected] allow: expected '<repo glob> <client DN>' per line, got {line!r}")
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


def _notifications(cp: configparser.ConfigParser) -> dict:
    """Validate ``[notifications]``; return the ``notify_*`` keyword arguments of :class:`Config`.

    Why so strict: a listener that silently binds the wrong key or talks plain AMQP where TLS
    was meant would look like "instant reload does not work" long after startup.
    """
    s = "notifications"
    url = _str(cp, s, "amqp_url", "")
    topic = _str(cp, s, "topic", DEFAULT_NOTIFY_TOPIC) or DEFAULT_NOTIFY_TOPIC
    exchange = _str(cp, s, "exchange", DEFAULT_NOTIFY_EXCHANGE) or DEFAULT_NOTIFY_EXCHANGE
    queue = _str(cp, s, "queue", "")
    tls = {k: _str(cp, s, k, "") for k in ("ca_cert", "certfile", "keyfile")}
    if url:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ConfigError(f"[{s}] amqp_url: not a URL: {redact_url(url)!r}") from None
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ConfigError(
                f"[{s}] amqp_url: expected amqp://host[:port]/vhost or amqps://… (AMQP 0-9-1), "
                f"got {redact_url(url)!r}"
            )
        if parts.scheme == "amqp" and any(tls.values()):
            raise ConfigError(f"[{s}] ca_cert/certfile/keyfile need an amqps:// amqp_url")
    words = topic.split(".")
    if len(topic) > 255 or not all(_BINDING_WORD_RE.match(w) for w in words):
        raise ConfigError(f"[{s}] topic: not an AMQP binding key (dot-separated words, * or #): {topic!r}")
    if not _AMQP_NAME_RE.match(exchange):
        raise ConfigError(f"[{s}] exchange: not an exchange name: {exchange!r}")
    if queue:
        try:
            sample = queue.format(pid=99999, host="h")
        except (KeyError, IndexError, ValueError, AttributeError):
            raise ConfigError(f"[{s}] queue: only {{pid}} and {{host}} are substituted: {queue!r}") from None
        if not _AMQP_NAME_RE.match(sample) or sample.startswith("amq."):
            raise ConfigError(f"[{s}] queue: not a queue name (letters, digits, -_.:, not amq.*): {queue!r}")
    if tls["keyfile"] and not tls["certfile"]:
        raise ConfigError(f"[{s}] keyfile needs certfile")
    if url:
        for key, path in tls.items():
            if path and not os.path.isfile(path):
                raise ConfigError(f"[{s}] {key}: no such file: {path}")
    return {
        "notify_amqp_url": url,
        "notify_topic": topic,
        "notify_exchange": exchange,
        "notify_queue": queue,
        "notify_ca_cert": tls["ca_cert"],
        "notify_certfile": tls["certfile"],
        "notify_keyfile": tls["keyfile"],
        "notify_reconnect_max_delay": _int(cp, s, "reconnect_max_delay", 30, minimum=1),
    }


def _http_url(cp: configparser.ConfigParser, section: str, key: str) -> str:
    value = _str(cp, section, key, "")
    if value and (not value.startswith(("https://", "http://")) or not value.isprintable() or " " in value):
        raise ConfigError(f"[{section}] {key}: not an http(s) URL: {value!r}")
    return value


def _ui(cp: configparser.ConfigParser) -> UiConfig:
    """Validate ``[ui]``. The registry name and remote name end up in shell commands users paste."""
    registry = _str(cp, "ui", "registry", "")
    if registry and not is_registry_name(registry):
        raise ConfigError(f"[ui] registry: expected host[:port], got {registry!r}")
    remote = _str(cp, "ui", "flatpak_remote", "fedora") or "fedora"
    if not _REMOTE_RE.match(remote):
        raise ConfigError(f"[ui] flatpak_remote: not a remote name (letters, digits, _.-): {remote!r}")
    page_size = _int(cp, "ui", "page_size", 100, minimum=1)
    if page_size > 1000:
        raise ConfigError(f"[ui] page_size: at most 1000, got {page_size}")
    return UiConfig(
        enable=_bool(cp, "ui", "enable", True),
        registry=registry,
        page_size=page_size,
        max_age=_int(cp, "ui", "max_age", 60),
        flatpak_remote=remote,
        signing_key=_http_url(cp, "ui", "signing_key"),
        lookaside=_http_url(cp, "ui", "lookaside"),
    )


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


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate INI text into a :class:`Config`; raise :class:`ConfigError` on any bad value."""
    cp = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        cp.read_string(text, source=source)
    except configparser.Error as exc:
        raise ConfigError(f"{source}: not a valid INI file: {str(exc).splitlines()[0]}") from None
    _check_known(cp)

    debug = _bool(cp, "general", "debug", False)
    if os.environ.get("CRANE_DEBUG", "").lower() == "true":
        debug = True

    secret_raw = _str(cp, "cdn", "url_auth_secret", "")
    secret = None
    if secret_raw:
        try:
            secret = bytes.fromhex(secret_raw)
        except ValueError:
            raise ConfigError("[cdn] url_auth_secret: not a hex string") from None
    algo = _str(cp, "cdn", "url_auth_algo", "sha256").lower() or "sha256"
    if algo not in HASH_ALGOS:
        raise ConfigError(f"[cdn] url_auth_algo: must be one of {', '.join(HASH_ALGOS)}, got {algo!r}")
    url_match = _str(cp, "cdn", "url_match", "")
    url_replace = _str(cp, "cdn", "url_replace", "")
    if bool(url_match) != bool(url_replace):
        raise ConfigError("[cdn] url_match and url_replace must be set together")

    dn_header = _str(cp, "protected", "dn_header", "X-SSL-Client-DN") or "X-SSL-Client-DN"
    if not all(c.isalnum() or c == "-" for c in dn_header):
        raise ConfigError(f"[protected] dn_header: not a header name: {dn_header!r}")

    return Config(
        debug=debug,
        data_dir=_str(cp, "general", "data_dir", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR,
        data_dir_polling_interval=_int(cp, "general", "data_dir_polling_interval", 60),
        endpoint=_str(cp, "general", "endpoint", ""),
        url_match=url_match,
        url_replace=url_replace,
        url_auth_secret=secret,
        url_auth_ttl=_int(cp, "cdn", "url_auth_ttl", 300, minimum=1),
        url_auth_param=_str(cp, "cdn", "url_auth_param", "_auth_") or "_auth_",
        url_auth_algo=algo,
        serve_content=_bool(cp, "serve_content", "enable", False),
        content_dir_v2=_str(cp, "serve_content", "content_dir_v2", DEFAULT_CONTENT_DIR_V2)
        or DEFAULT_CONTENT_DIR_V2,
        use_x_sendfile=_bool(cp, "serve_content", "use_x_sendfile", True),
        settle_seconds=_int(cp, "mirrors", "settle_seconds", 86400),
        allowed_url_prefixes=_url_prefixes(_str(cp, "mirrors", "allowed_url_prefixes", "")),
        catalog=_bool(cp, "registry", "catalog", True),
        page_size_max=_int(cp, "registry", "page_size_max", 1000, minimum=1),
        default_platform=_platform(_str(cp, "registry", "default_platform", "linux/amd64") or "linux/amd64"),
        fast_path=_bool(cp, "registry", "fast_path", True),
        dn_header=dn_header,
        trusted_proxies=_networks(_str(cp, "protected", "trusted_proxies", "")),
        allow=_allow(cp.get("protected", "allow", fallback="")),
        **_notifications(cp),
        ui=_ui(cp),
    )


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
