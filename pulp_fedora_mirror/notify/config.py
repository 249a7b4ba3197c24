"""Notification settings: broker URL, topic prefix, spool directory, TLS files, timeouts.

Sources, later ones winning: built-in defaults, a TOML file (``FEDORA_MIRROR_NOTIFY_CONFIG`` or
``/etc/fedora-mirror/notify.toml``; keys at the top level or under ``[notify]``), environment
variables (``FEDORA_MIRROR_AMQP_URL``, ``FEDORA_MIRROR_TOPIC_PREFIX``, ``FEDORA_MIRROR_SPOOL``),
then explicit values (a mapping from Pulp settings, CLI options).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .message import DEFAULT_TOPIC_PREFIX

SYSTEM_CONFIG = Path("/etc/fedora-mirror/notify.toml")

ENV_KEYS = {
    "FEDORA_MIRROR_AMQP_URL": "url",
    "FEDORA_MIRROR_TOPIC_PREFIX": "topic_prefix",
    "FEDORA_MIRROR_SPOOL": "spool_dir",
}


def default_spool_dir() -> str:
    """Where pending messages wait when nothing else is configured.

    Root (a system service) uses ``/var/spool/fedora-mirror/outbox``; others
    ``$XDG_STATE_HOME/fedora-mirror/outbox`` (``~/.local/state/...``), so a Pulp worker and an
    admin's CLI agree as long as they run as the same user or share ``FEDORA_MIRROR_SPOOL``.
    """
    if os.geteuid() == 0:
        return "/var/spool/fedora-mirror/outbox"
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "fedora-mirror", "outbox")


@dataclass(frozen=True)
class NotifyConfig:
    """Everything the notifier needs. ``url=None`` means: queue only, send nothing."""

    #: ``amqp://``/``amqps://`` → AMQP 0-9-1 (pika, recommended); ``amqp1+amqp://``/``amqp1+amqps://``
    #: → AMQP 1.0 (python-qpid-proton). See docs/messages.md.
    url: str | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    spool_dir: str = ""
    exchange: str = "amq.topic"
    #: Seconds for TCP connect, AMQP handshake and each confirm: an export must never hang on the bus.
    connect_timeout: float = 5.0
    ca_cert: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def __post_init__(self) -> None:
        if not self.spool_dir:
            object.__setattr__(self, "spool_dir", default_spool_dir())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> NotifyConfig:
        """Build from a dict, ignoring unknown keys' case (Pulp settings are often upper-case)."""
        names = {f.name for f in fields(cls)}
        kwargs = {}
        for key, value in data.items():
            k = str(key).lower()
            if k in names and value is not None:
                kwargs[k] = float(value) if k == "connect_timeout" else value
        return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> NotifyConfig:
    """Merge file, environment and explicit overrides (``None`` overrides are ignored)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    file = path or env.get("FEDORA_MIRROR_NOTIFY_CONFIG")
    if file is None and SYSTEM_CONFIG.is_file():
        file = SYSTEM_CONFIG
    if file is not None:
        with open(file, "rb") as f:
            doc = tomllib.load(f)
        data.update(doc.get("notify", doc))
    for var, key in ENV_KEYS.items():
        if env.get(var):
            data[key] = env[var]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return NotifyConfig.from_mapping(data)


def with_overrides(config: NotifyConfig, **overrides: Any) -> NotifyConfig:
    """A copy with the non-None overrides applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
