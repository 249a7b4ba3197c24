"""Who may read a protected repository.

The TLS front end verifies client certificates; crane_fedora only trusts the verified subject
DN it is handed: the WSGI environ key ``SSL_CLIENT_S_DN`` (mod_ssl/mod_wsgi with
``SSLOptions +StdEnvVars``) or the ``[protected] dn_header`` header, the latter only when the
peer (``REMOTE_ADDR``) is one of ``[protected] trusted_proxies``. A client that is not allowed
sees exactly what it would see for an unknown repository.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Any

from crane_fedora.config import AllowRule, Config


def _as_dn(value: object) -> str | None:
    """``value`` if it can be a subject DN, else None.

    Why: front ends hand over placeholders when there is no certificate (Apache's
    ``%{SSL_CLIENT_S_DN}s`` is ``(null)``, other setups send ``-`` or blanks), and with an
    ``allow`` rule of ``*`` any non-empty string used to count as a verified client. A DN always
    has at least one ``attribute=value``.
    """
    dn = str(value).strip() if value else ""
    return dn if "=" in dn else None


def client_dn(environ: dict, config: Config) -> str | None:
    """The verified client DN for this request, or None for an anonymous client."""
    dn = _as_dn(environ.get("SSL_CLIENT_S_DN"))
    if dn is not None:
        return dn
    if not config.trusted_proxies:
        return None
    header = environ.get(config.dn_environ_key)
    if not header:
        return None
    try:
        peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    if any(peer in net for net in config.trusted_proxies):
        return _as_dn(header)
    return None


def may_read(name: str, environ: dict, config: Config) -> bool:
    """True if the client of ``environ`` may read the protected repository ``name``."""
    dn = client_dn(environ, config)
    if dn is None:
        return False
    return any(rule.permits(name, dn) for rule in config.allow)


def rules_for(environ: dict, config: Config) -> tuple[AllowRule, ...]:
    """The allow rules that can admit this request's client; empty for an anonymous client.

    Why: the catalog filters every protected name; deriving the DN once per request (not once per
    name) keeps an anonymous catalog page as cheap as with no protected repositories at all.
    """
    dn = client_dn(environ, config)
    if dn is None:
        return ()
    return tuple(rule for rule in config.allow if rule.dn == "*" or rule.dn == dn)


def visible_names(index: Any, environ: dict, config: Config) -> tuple[str, ...]:
    """Repository names this request's client may know exist, sorted.

    Every public name, plus the protected ones an allow rule admits this client to: the catalog
    and the admin view both answer with this, so neither reveals a protected repository to a
    client that would get 404 NAME_UNKNOWN for it.
    """
    names = index.public_names
    if len(names) == len(index.all_names):
        return names
    rules = rules_for(environ, config)
    if not rules:
        return names
    return tuple(
        n
        for n in index.all_names
        if not index.repos[n].protected or any(fnmatch.fnmatchcase(n, r.pattern) for r in rules)
    )
