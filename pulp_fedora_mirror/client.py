"""A small Pulp REST client for promotion and publishing, embeddable in Bodhi.

Why not pulp-glue or generated bindings: Bodhi needs four calls (find a repository, find an
exporter, ``copy_tags``, export) and clear errors, without pulling pulpcore, Django or an OpenAPI
toolchain into its environment. Only ``requests`` is needed.

Every failure is a :class:`PulpError` subclass whose ``str()`` is one line meant for a human and
whose ``exit_code`` is what ``fedora-mirror`` returns for it.
"""

from __future__ import annotations

import configparser
import os
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

DEFAULT_CONFIG = Path("~/.config/fedora-mirror/pulp.toml")
#: Pulp's API path below the base URL (``API_ROOT`` setting, default ``/pulp/``).
DEFAULT_API_ROOT = "/pulp/"
EXPORTER_ENDPOINT = "exporters/fedora_mirror/mirror/"
#: Repository types searched by name, in order (pushed repos are plain ``container`` in 2.30).
CONTAINER_REPO_ENDPOINTS = ("repositories/container/container/", "repositories/container/container-push/")

ENV_VARS = {
    "PULP_URL": "base_url",
    "PULP_USERNAME": "username",
    "PULP_PASSWORD": "password",
    "PULP_CA_BUNDLE": "ca_bundle",
    "PULP_CLIENT_CERT": "client_cert",
    "PULP_CLIENT_KEY": "client_key",
}


# --------------------------------------------------------------------------------------------- errors


class PulpError(Exception):
    """Base class: one-line message; ``exit_code`` for the CLI."""

    exit_code = 4


class PulpConfigError(PulpError):
    """Missing or invalid configuration (no URL, unreadable config file, bad value)."""

    exit_code = 2


class PulpNotFound(PulpError):
    """A repository or exporter of that name does not exist: a usage error."""

    exit_code = 2


class PulpAuthError(PulpError):
    """HTTP 401/403: wrong credentials or not allowed."""

    exit_code = 3


class PulpUnreachable(PulpError):
    """Connection refused, DNS failure, TLS failure or a request timeout."""

    exit_code = 4


class PulpHTTPError(PulpError):
    """Any other HTTP error; the message carries Pulp's own error text."""

    exit_code = 4

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TaskFailed(PulpError):
    """The task ended ``failed`` or ``canceled``; the message carries the task's error description."""

    exit_code = 1

    def __init__(self, message: str, task: Task) -> None:
        super().__init__(message)
        self.task = task


class TaskTimeout(PulpError):
    """The task did not finish within the timeout (it keeps running in Pulp)."""

    exit_code = 1

    def __init__(self, message: str, task: Task) -> None:
        super().__init__(message)
        self.task = task


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class PulpConfig:
    """Connection settings. ``verify`` is the CA bundle path, or True for the system store."""

    base_url: str
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    api_root: str = DEFAULT_API_ROOT
    #: Seconds for connect and for each read; a task wait has its own timeout.
    request_timeout: float = 30.0

    @property
    def api_url(self) -> str:
        """``<base>/pulp/api/v3/``."""
        root = "/" + self.api_root.strip("/") + "/"
        return self.base_url.rstrip("/") + root + "api/v3/"


_FILE_KEYS = {
    "base_url": "base_url",
    "url": "base_url",
    "username": "username",
    "password": "password",
    "ca_bundle": "ca_bundle",
    "ca-bundle": "ca_bundle",
    "client_cert": "client_cert",
    "cert": "client_cert",
    "client_key": "client_key",
    "key": "client_key",
    "api_root": "api_root",
    "timeout": "request_timeout",
    "request_timeout": "request_timeout",
}


def _read_config_file(path: Path) -> dict[str, Any]:
    """Read TOML (``[pulp]`` table or top level; pulp-cli's ``[cli]`` too) or INI (``[pulp]``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PulpConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise PulpConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        doc: Mapping[str, Any] = tomllib.loads(raw.decode("utf-8"))
        section = doc.get("pulp") or doc.get("cli") or doc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as toml_exc:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(raw.decode("utf-8", "replace"))
        except configparser.Error:
            raise PulpConfigError(f"config file {path} is neither TOML nor INI: {toml_exc}") from None
        if not parser.has_section("pulp"):
            raise PulpConfigError(f"config file {path} has no [pulp] section") from None
        section = dict(parser["pulp"])
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in _FILE_KEYS and not isinstance(value, dict):
            out[_FILE_KEYS[key]] = value
    return out


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **explicit: Any,
) -> PulpConfig:
    """Merge, lowest first: config file, ``PULP_*`` environment variables, explicit arguments.

    The config file is ``config_file`` (must exist) or ``~/.config/fedora-mirror/pulp.toml`` (if
    it exists). Explicit ``None`` values are ignored, so CLI options can be passed straight in.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if config_file is not None:
        data.update(_read_config_file(Path(config_file).expanduser()))
    else:
        default = DEFAULT_CONFIG.expanduser()
        if default.is_file():
            data.update(_read_config_file(default))
    for var, key in ENV_VARS.items():
        if env.get(var):
            data[key] = env[var]
    data.update({k: v for k, v in explicit.items() if v is not None})
    url = data.get("base_url")
    if not url:
        raise PulpConfigError(
            "no Pulp URL: give --pulp-url, set PULP_URL, or put base_url in ~/.config/fedora-mirror/pulp.toml"
        )
    parts = urllib.parse.urlsplit(str(url))
    if parts.username is not None or parts.password is not None:
        # Refused, and not echoed: every later error message quotes the URL.
        raise PulpConfigError(
            "the Pulp URL must not contain user:password@; use username/password "
            "(PULP_USERNAME/PULP_PASSWORD or the config file)"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PulpConfigError(f"invalid Pulp URL {url!r}: expected http(s)://host[:port]")
    if bool(data.get("client_key")) and not data.get("client_cert"):
        raise PulpConfigError("a client key was given without a client certificate")
    for key, what in (
        ("ca_bundle", "CA bundle"),
        ("client_cert", "client certificate"),
        ("client_key", "client key"),
    ):
        if data.get(key):
            data[key] = os.path.expanduser(str(data[key]))
            if not os.path.isfile(data[key]):
                raise PulpConfigError(f"{what} not found: {data[key]}")
    if "request_timeout" in data:
        try:
            data["request_timeout"] = float(data["request_timeout"])
        except ValueError:
            raise PulpConfigError(f"invalid timeout {data['request_timeout']!r}") from None
    return PulpConfig(**data)


# --------------------------------------------------------------------------------------------- tasks


TERMINAL_STATES = frozenset({"completed", "failed", "canceled", "skipped"})


@dataclass
class Task:
    """A Pulp task as last seen (``data`` is the raw JSON)."""

    href: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """``waiting``, ``running``, ``completed``, ``failed``, ``canceled`` (or ``unknown``)."""
        return str(self.data.get("state", "unknown"))

    @property
    def done(self) -> bool:
        """True once the task will not change any more."""
        return self.state in TERMINAL_STATES

    @property
    def created_resources(self) -> list[str]:
        """Hrefs the task created (a new repository version, an export record)."""
        return list(self.data.get("created_resources") or [])

    @property
    def progress_reports(self) -> list[dict[str, Any]]:
        """Pulp's progress reports: ``message``, ``code``, ``state``, ``done``, ``total``."""
        return list(self.data.get("progress_reports") or [])

    @property
    def error_description(self) -> str:
        """The task's error text, one line."""
        err = self.data.get("error") or {}
        text = err.get("description") or err.get("traceback") or "no error description"
        return " ".join(str(text).split())


ProgressCallback = Callable[[Task], None]


# --------------------------------------------------------------------------------------------- client


def _pulp_error_text(response: requests.Response) -> str:
    """Pulp's error body as one line (``{"detail": …}``, field errors, or a list of messages)."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())[:300]
        return text or response.reason or ""

    def flat(value: Any, prefix: str = "") -> Iterable[str]:
        if isinstance(value, Mapping):
            for k, v in value.items():
                yield from flat(v, "" if k in ("detail", "non_field_errors") else f"{k}: ")
        elif isinstance(value, list):
            for v in value:
                yield from flat(v, prefix)
        else:
            yield f"{prefix}{value}"

    return "; ".join(flat(body))[:500]


class PulpClient:
    """Promote container tags and publish (export) repositories through Pulp's REST API."""

    def __init__(self, config: PulpConfig | None = None, session: requests.Session | None = None, **kw: Any):
        """``PulpClient(config)`` or ``PulpClient(base_url=…, username=…, …)`` (merged with env/file)."""
        self.config = config or load_config(kw.pop("config_file", None), **kw)
        s = session or requests.Session()
        c = self.config
        if c.username is not None:
            s.auth = (c.username, c.password or "")
        if c.client_cert:
            s.cert = (c.client_cert, c.client_key) if c.client_key else c.client_cert
        s.verify = c.ca_bundle if c.ca_bundle else True
        s.headers["Accept"] = "application/json"
        self.session = s

    # -- HTTP ------------------------------------------------------------------------------------

    def _url(self, path_or_href: str) -> str:
        if path_or_href.startswith(("http://", "https://")):
            return path_or_href
        if path_or_href.startswith("/"):  # an href from Pulp, already absolute on the server
            return self.config.base_url.rstrip("/") + path_or_href
        return self.config.api_url + path_or_href

    def request(self, method: str, path_or_href: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded JSON, turning every failure into a PulpError."""
        url = self._url(path_or_href)
        kwargs.setdefault("timeout", self.config.request_timeout)
        try:
            r = self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise PulpUnreachable(f"TLS error talking to {self.config.base_url}: {_reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise PulpUnreachable(
                f"Pulp at {self.config.base_url} did not answer within {kwargs['timeout']:g}s"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise PulpUnreachable(f"cannot reach Pulp at {self.config.base_url}: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise PulpUnreachable(f"request to {url} failed: {_reason(exc)}") from None
        if r.status_code in (401, 403):
            who = f"user {self.config.username!r}" if self.config.username else "anonymous request"
            what = "authentication failed" if r.status_code == 401 else "permission denied"
            raise PulpAuthError(f"{what} ({r.status_code}, {who}): {_pulp_error_text(r)}")
        if r.status_code >= 400:
            path = urllib.parse.urlsplit(url).path
            raise PulpHTTPError(
                f"{method} {path} failed: HTTP {r.status_code}: {_pulp_error_text(r)}", r.status_code
            )
        if r.status_code == 204 or not r.content:
            return {}
        try:
            return r.json()
        except ValueError:
            raise PulpHTTPError(
                f"{method} {url}: HTTP {r.status_code} but the answer is not JSON (is this Pulp?)",
                r.status_code,
            ) from None

    def _find_one(self, endpoint: str, name: str) -> dict[str, Any] | None:
        page = self.request("GET", endpoint, params={"name": name, "limit": 2})
        results = page.get("results") or []
        return results[0] if results else None

    # -- lookups ---------------------------------------------------------------------------------

    def find_repository(self, name: str) -> dict[str, Any]:
        """The container repository called ``name`` (an href is fetched as is)."""
        if name.startswith("/"):
            return self.request("GET", name)
        for endpoint in CONTAINER_REPO_ENDPOINTS:
            try:
                found = self._find_one(endpoint, name)
            except PulpHTTPError as exc:
                if exc.status == 404:  # that repository type does not exist on this Pulp
                    continue
                raise
            if found:
                return found
        raise PulpNotFound(f"no container repository named {name!r}")

    def find_exporter(self, name: str) -> dict[str, Any]:
        """The fedora_mirror exporter called ``name`` (an href is fetched as is)."""
        if name.startswith("/"):
            return self.request("GET", name)
        try:
            found = self._find_one(EXPORTER_ENDPOINT, name)
        except PulpHTTPError as exc:
            if exc.status == 404:
                raise PulpNotFound(
                    "this Pulp has no fedora_mirror exporter endpoint (is pulp_fedora_mirror installed?)"
                ) from None
            raise
        if not found:
            raise PulpNotFound(f"no fedora_mirror exporter named {name!r}")
        return found

    def _href(self, value: str | Mapping[str, Any], kind: str) -> str:
        if isinstance(value, Mapping):
            return str(value["pulp_href"])
        if value.startswith("/"):
            return value
        found = self.find_repository(value) if kind == "repository" else self.find_exporter(value)
        return str(found["pulp_href"])

    def _task(self, response: Mapping[str, Any]) -> Task:
        href = response.get("task")
        if not href:
            raise PulpHTTPError(f"Pulp did not return a task: {dict(response)}", 200)
        return Task(str(href), {"state": "waiting"})

    # -- operations ------------------------------------------------------------------------------

    def promote(
        self, from_repo: str | Mapping[str, Any], to_repo: str | Mapping[str, Any], tags: Iterable[str]
    ) -> Task:
        """Copy ``tags`` (with every manifest and blob they reference) from one repository to another.

        pulp-container ``POST <to>/copy_tags/``; the task creates a new version of ``to_repo``.
        """
        names = list(tags)
        if not names:
            raise PulpConfigError("promote needs at least one tag")
        src = self._href(from_repo, "repository")
        dst = self._href(to_repo, "repository")
        body = {"source_repository": src, "names": names}
        return self._task(self.request("POST", dst + "copy_tags/", json=body))

    def carry_signatures(self, from_repo: str | Mapping[str, Any], to_repo: str | Mapping[str, Any]) -> Task:
        """Add the signatures ``from_repo`` has for the manifests ``to_repo`` now holds.

        pulp-container's ``copy_tags`` leaves signatures behind; this plugin's
        ``fedora_mirror/carry_signatures/`` task adds them (simple-signing ``ManifestSignature``
        content and sigstore ``sha256-<hex>.sig`` tags). Dispatched right after a promotion, it runs
        after it (both lock the destination) and sees the promoted manifests.
        """
        body = {
            "source_repository": self._href(from_repo, "repository"),
            "repository": self._href(to_repo, "repository"),
        }
        return self._task(self.request("POST", "fedora_mirror/carry_signatures/", json=body))

    def publish(
        self,
        repository: str | Mapping[str, Any] | None,
        exporter: str | Mapping[str, Any],
        name: str | None = None,
        *,
        repository_version: str | None = None,
    ) -> Task:
        """Export a repository (its latest version) or one exact ``repository_version`` href.

        ``name`` is the registry name written to the metadata (default: the exporter's choice).
        """
        body: dict[str, Any] = {}
        # The repository first: its endpoint always exists, so bad credentials show up as 401
        # rather than as the 404 Pulp gives for a missing plugin endpoint before checking auth.
        if repository_version:
            body["repository_version"] = repository_version
        elif repository is not None:
            body["repository"] = self._href(repository, "repository")
        else:
            raise PulpConfigError("publish needs a repository or a repository version")
        exp = self._href(exporter, "exporter")
        if name:
            body["name"] = name
        return self._task(self.request("POST", exp + "exports/", json=body))

    def get_task(self, task: Task | str) -> Task:
        """Fetch the current state of a task."""
        href = task.href if isinstance(task, Task) else task
        return Task(href, self.request("GET", href))

    def wait(
        self,
        task: Task | str,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> Task:
        """Poll until the task finishes; return it, or raise TaskFailed / TaskTimeout.

        ``progress_callback(task)`` is called after every poll (progress reports included).
        """
        href = task.href if isinstance(task, Task) else task
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(interval, 0.2)
        while True:
            current = self.get_task(href)
            if progress_callback is not None:
                progress_callback(current)
            if current.state == "completed":
                return current
            if current.state == "failed":
                raise TaskFailed(f"task failed: {current.error_description}", current)
            if current.state == "canceled":
                raise TaskFailed(f"task canceled ({href})", current)
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeout(
                    f"task still {current.state} after {timeout:g}s (it keeps running in Pulp: {href})",
                    current,
                )
            sleep = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(sleep)
            delay = min(delay * 1.5, interval)

    def release(
        self,
        from_repo: str,
        to_repo: str,
        tags: Iterable[str],
        exporter: str,
        name: str | None = None,
        *,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> tuple[Task, Task]:
        """Promote, wait, then publish exactly the repository version the promotion created.

        Exporting that version (not "latest") means a concurrent promotion cannot slip into this
        publish. If the tags were already there (no new version) the repository's latest is used.
        """
        started = time.monotonic()
        promoted = self.wait(self.promote(from_repo, to_repo, tags), progress_callback, timeout)
        carried = self.wait(self.carry_signatures(from_repo, to_repo), progress_callback, timeout)
        # the signatures' version, when they added one, holds the promotion too
        versions = [h for t in (carried, promoted) for h in t.created_resources if "/versions/" in h]
        remaining = None if timeout is None else max(1.0, timeout - (time.monotonic() - started))
        task = self.publish(to_repo, exporter, name, repository_version=versions[0] if versions else None)
        published = self.wait(task, progress_callback, remaining)
        return promoted, published

    def export_summary(self, task: Task) -> dict[str, Any] | None:
        """The export record created by a finished publish task (with its ``summary``), if any."""
        for href in task.created_resources:
            if "/exports/" in href:
                return self.request("GET", href)
        return None


def _reason(exc: BaseException) -> str:
    """The innermost, most useful one-line reason of a requests/urllib3 exception."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "No route to host",
        "timed out",
        "Temporary failure in name resolution",
        "CERTIFICATE_VERIFY_FAILED",
        "Network is unreachable",
    ):
        if marker in text:
            return marker
    return " ".join(text.split())[:200]
