"""Crane's CDN URL rewrite and signed-URL token (same algorithm and test vector as Crane)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

from crane_fedora.config import Config


def auth_token(path: str, secret: bytes, expires: int, algo: str = "sha256") -> str:
    """``exp=<expires>~hmac=<hex>`` over ``exp=<expires>~url=<path>``, as Akamai-style CDNs check."""
    mac = hmac.new(secret, f"exp={expires}~url={path}".encode(), getattr(hashlib, algo)).hexdigest()
    return f"exp={expires}~hmac={mac}"


def finish_url(url: str, config: Config, now: float | None = None) -> str:
    """Apply ``[cdn]`` rewrite then token; the token joins with ``&`` if a query already exists."""
    if config.url_match:
        url = url.replace(config.url_match, config.url_replace)
    if config.url_auth_secret is not None:
        expires = int(time.time() if now is None else now) + config.url_auth_ttl
        token = auth_token(urlsplit(url).path, config.url_auth_secret, expires, config.url_auth_algo)
        url = f"{url}{'&' if '?' in url else '?'}{config.url_auth_param}={token}"
    return url
