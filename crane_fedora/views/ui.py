"""The browsable pages: ``/`` (catalog), ``/r/<name>`` (one repository), ``/help`` (client setup).

Server-rendered with Jinja2 (autoescaped), usable without JavaScript; one small script adds copy
buttons. Everything shown comes from :mod:`crane_fedora.ui.summary`, computed once per metadata
snapshot. HTTP: ``text/html; charset=utf-8``, a strong ``ETag`` of the body (``304`` on a match),
``Cache-Control`` (``private`` when the page may show protected repositories), and a strict
``Content-Security-Policy``: no inline script or style, nothing from other hosts.

Shell safety: every command on the pages is built from validated tokens only (repository and
tag grammar, a ``host[:port]`` registry name, a well-formed Flatpak ref), so pasting it into a
shell runs exactly what it shows.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for

from crane_fedora.config import Config, is_registry_name
from crane_fedora.protected import may_read, rules_for, visible_names
from crane_fedora.ui.summary import Catalog, RepoSummary, SummaryCache

bp = Blueprint("ui", __name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
MAX_QUERY = 128


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file, read once: versioned URLs make it cacheable for a year."""

    body: bytes
    content_type: str
    version: str


def _load_assets() -> dict[str, Asset]:
    assets = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in ASSET_TYPES:
            body = path.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:16]
            assets[path.name] = Asset(body, ASSET_TYPES[path.suffix], version)
    return assets


class UiState:
    """Per-application UI state (``app.extensions["crane_fedora_ui"]``)."""

    def __init__(self) -> None:
        self.cache = SummaryCache()
        self.assets = _load_assets()


def _state() -> tuple[Config, Catalog, UiState]:
    crane = current_app.extensions["crane_fedora"]
    ui: UiState = current_app.extensions["crane_fedora_ui"]
    crane.store.ensure_poller()
    return crane.config, ui.cache.catalog(crane.store.index), ui


def registry_name(config: Config, environ: dict) -> tuple[str, bool]:
    """(registry name for pull commands, True if it came from the request's Host header).

    ``[ui] registry`` first, then ``[general] endpoint``; only then the Host header, and only if it
    is a plain ``host[:port]`` (a spoofed Host cannot inject markup or shell syntax, and pages that
    depend on it say ``Vary: Host`` so a shared cache never serves one client's name to another).
    """
    if config.ui_registry:
        return config.ui_registry, False
    if config.endpoint and is_registry_name(config.endpoint):
        return config.endpoint, False
    host = environ.get("HTTP_HOST", "")
    if is_registry_name(host):
        return host, True
    server, port = environ.get("SERVER_NAME", ""), environ.get("SERVER_PORT", "")
    if port not in ("", "80", "443"):
        server = f"{server}:{port}"
    return (server if is_registry_name(server) else "localhost"), True


def _asset_url(name: str) -> str:
    ui: UiState = current_app.extensions["crane_fedora_ui"]
    return url_for("ui.asset", name=name, v=ui.assets[name].version)


def _html(
    template: str,
    status: int = 200,
    *,
    shows_protected: bool = False,
    cache: tuple | None = None,
    catalog: Catalog | None = None,
    context: Callable[[], dict] | None = None,
    **fixed: object,
) -> Response:
    """Render (or reuse this snapshot's rendering), add the security and caching headers, answer
    304 when the ETag matches. ``cache`` must name every input of the page but the registry name
    and the URL prefix, which are added here; ``context()`` is only called to render."""
    config = current_app.extensions["crane_fedora"].config
    registry, from_host = registry_name(config, request.environ)
    key = (template, registry, request.script_root, *cache) if cache is not None and catalog else None
    hit = catalog.pages.get(key) if key is not None and catalog is not None else None
    if hit is None:
        values = {**fixed, **(context() if context is not None else {})}
        body = render_template(
            template, registry=registry, asset=_asset_url, repo_url=_repo_url, **values
        ).encode("utf-8")
        hit = (body, hashlib.blake2b(body, digest_size=16).hexdigest())
        if key is not None and catalog is not None:
            catalog.pages.put(key, hit)
    body, etag = hit
    resp = Response(body, status=status, content_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)
    scope = "private" if shows_protected else "public"
    resp.headers["Cache-Control"] = f"{scope}, max-age={config.ui_max_age}"
    vary = ["Host"] if from_host else []
    if config.trusted_proxies:
        vary.append(config.dn_header)
    if vary:
        resp.headers["Vary"] = ", ".join(vary)
    if status == 200:
        resp.set_etag(etag)
        resp.make_conditional(request)
    return resp


def _repo_url(name: str) -> str:
    """``/r/<name>``: names follow the registry grammar (URL-safe), so no quoting and no url_for
    (which cost more than the rest of a catalog row)."""
    return f"{request.script_root}/r/{name}"


def _page_number(count: int, size: int) -> tuple[int, int]:
    """(page, last page) from ``?page=``; anything unparsable is page 1, too big is the last."""
    last = max(1, math.ceil(count / size))
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 1
    return min(max(page, 1), last), last


def _groups(rows: Iterable[RepoSummary]) -> list[tuple[str, list[RepoSummary]]]:
    groups: list[tuple[str, list[RepoSummary]]] = []
    for row in rows:
        if not groups or groups[-1][0] != row.group:
            groups.append((row.group, []))
        groups[-1][1].append(row)
    return groups


@bp.before_request
def _query_must_be_utf8() -> None:
    """A query string that is not UTF-8 is a 400, not a 500: Werkzeug's ``request.args`` raises
    ``UnicodeDecodeError`` on it (``GET /?%80``), and every page reads its arguments."""
    try:
        request.args  # noqa: B018 - parsed (and cached) here, where a decode error can be answered
    except UnicodeDecodeError:
        abort(400, "the query string is not UTF-8")


@bp.route("/", methods=["GET", "HEAD"])
def catalog() -> Response:
    """Every repository this client may see, grouped by first path component, searchable, paged."""
    config, cat, _ui = _state()
    q = request.args.get("q", "")[:MAX_QUERY].strip()
    visible = visible_names(cat.index, request.environ, config)
    shows_protected = len(visible) != len(cat.index.public_names)
    who = rules_for(request.environ, config) if shows_protected else ()

    def context() -> dict:
        names = visible
        if q:
            needle = q.lower()
            names = tuple(n for n in names if needle in n)
        size = config.ui_page_size
        page, last = _page_number(len(names), size)
        start = (page - 1) * size
        rows = [cat.summaries[n] for n in names[start : start + size]]
        return {
            "total": len(names),
            "groups": _groups(rows),
            "page": page,
            "last": last,
            "first_shown": start + 1 if rows else 0,
            "last_shown": start + len(rows),
        }

    return _html(
        "ui/catalog.html",
        shows_protected=shows_protected,
        cache=("catalog", q, request.args.get("page", "")[:20], who),
        catalog=cat,
        context=context,
        q=q,
    )


@bp.route("/r/<path:name>", methods=["GET", "HEAD"])
def repository(name: str) -> Response:
    """One repository: tags with digest, platforms, size, publish time, signature, pull commands."""
    config, cat, ui = _state()
    repo = cat.index.repos.get(name)
    if repo is None or (repo.protected and not may_read(name, request.environ, config)):
        # The same page for unknown and for protected-and-not-allowed: existence is not revealed.
        return _html("ui/not_found.html", 404, name=name[:300])
    summary = cat.summaries[name]

    def context() -> dict:
        det = ui.cache.details(repo, summary)
        size = config.ui_page_size
        page, last = _page_number(len(det.tags), size)
        start = (page - 1) * size
        default = next((t for t in det.tags if t.tag == "latest"), det.tags[0] if det.tags else None)
        return {
            "details": det,
            "default": default,
            "tags": det.tags[start : start + size],
            "page": page,
            "last": last,
        }

    return _html(
        "ui/repository.html",
        shows_protected=repo.protected,
        cache=("repository", name, request.args.get("page", "")[:20]),
        catalog=cat,
        context=context,
        repo=summary,
        remote=config.ui_flatpak_remote,
    )


@bp.route("/help", methods=["GET", "HEAD"])
def help_page() -> Response:
    """How to configure podman (registries.d, policy.json) and flatpak for this registry."""
    config, cat, _ui = _state()
    registry, _from_host = registry_name(config, request.environ)
    lookaside = config.ui_lookaside or cat.lookaside
    key_path = f"/etc/pki/containers/{registry.split(':')[0].strip('[]')}.gpg"
    policy = {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker": {registry: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": key_path}]}
        },
    }
    example = next(iter(visible_names(cat.index, request.environ, config)), "fedora/fedora")
    return _html(
        "ui/help.html",
        cache=("help", example),
        catalog=cat,
        lookaside=lookaside,
        signing_key=config.ui_signing_key,
        key_path=key_path,
        policy=json.dumps(policy, indent=2),
        remote=config.ui_flatpak_remote,
        example=example,
    )


@bp.route("/-/static/<name>", methods=["GET", "HEAD"])
def asset(name: str) -> Response:
    """The stylesheet, the script and the icon; versioned URLs are immutable."""
    ui: UiState = current_app.extensions["crane_fedora_ui"]
    a = ui.assets.get(name)
    if a is None:
        abort(404)
    resp = Response(a.body, content_type=a.content_type, headers=SECURITY_HEADERS)
    if request.args.get("v") == a.version:
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        resp.headers["Cache-Control"] = "public, max-age=300"
    resp.set_etag(a.version)
    return resp.make_conditional(request)


@bp.app_template_filter("size")
def human_size(value: int | None) -> str:
    """Decimal units as podman prints them (``2.5 MB``); ``unknown`` for None."""
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # pragma: no cover


@bp.app_template_filter("utc")
def utc(value: float | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A Unix time as UTC text (``%Y-%m-%dT%H:%M:%SZ`` for ``<time datetime>``)."""
    if value is None:
        return ""
    return time.strftime(fmt, time.gmtime(value))


@bp.app_template_filter("short")
def short_digest(value: str | None) -> str:
    """``sha256:0123456789ab`` (12 hex digits, as podman shows image ids)."""
    if not value:
        return ""
    algo, _, hexpart = value.partition(":")
    return f"{algo}:{hexpart[:12]}"


def init_app(app: object) -> None:
    """Register the pages on ``app`` (called by create_app when ``[ui] enable``)."""
    state = UiState()
    app.extensions["crane_fedora_ui"] = state  # type: ignore[attr-defined]
    store = app.extensions["crane_fedora"].store  # type: ignore[attr-defined]
    # Summarise now and after every background reload: no visitor waits for it.
    state.cache.catalog(store.index)
    store.on_reload.append(state.cache.catalog)
    app.jinja_env.trim_blocks = True  # type: ignore[attr-defined]  # lighter pages, same markup
    app.jinja_env.lstrip_blocks = True  # type: ignore[attr-defined]
    app.register_blueprint(bp)  # type: ignore[attr-defined]
