"""The Pulp client Bodhi imports: promote a build, publish (export) a repository version, wait.

Built on pulp-glue (the ``[cli]`` extra; no pulpcore, no Django): pulp-glue looks operations up in
Pulp's OpenAPI description, authenticates, finds repositories and exporters by name and calls our
plugin's endpoints through the contexts in :mod:`pulp_fedora_mirror.glue`. What stays here is
what pulp-glue does not do (each also listed in docs/bodhi.md):

- configuration from ``PULP_*`` variables and ``~/.config/fedora-mirror/pulp.toml`` (pulp-glue
  reads only pulp-cli's ``cli.toml``, which :meth:`PulpClient.from_profile` uses);
- typed, one-line errors with exit codes (pulp-glue raises a few generic exceptions, drops the
  server's text on 401/403 and reports connection failures as long urllib3 reprs);
- :meth:`PulpClient.wait` with a progress callback and a fractional timeout (pulp-glue's
  ``wait_for_task`` only prints dots, polls once a second and raises on timeout without the task);
- a per-request timeout (pulp-glue sets none, so a hung server would hang Bodhi).

Every failure is a :class:`PulpError` subclass whose ``str()`` is one line meant for a human and
whose ``exit_code`` is what ``fedora-mirror`` returns for it.
"""

from __future__ import annotations

import configparser
import functools
import os
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pulp_glue.common.authentication import GlueAuthProvider
from pulp_glue.common.context import PluginRequirement, PulpContext, PulpEntityContext
from pulp_glue.common.exceptions import (
    PulpAuthenticationFailed,
    PulpEntityNotFound,
    PulpException,
    PulpNotAutorized,
)
from pulp_glue.common.exceptions import (
    PulpHTTPError as GlueHTTPError,
)
from pulp_glue.container.context import PulpContainerPushRepositoryContext, PulpContainerRepositoryContext

from pulp_fedora_mirror.glue import (
    COMPONENT,
    PulpMirrorExportContext,
    PulpMirrorExporterContext,
    PulpMirrorPromoteContext,
    error_text,
    keep_server_errors,
    server_message,
)

DEFAULT_CONFIG = Path("~/.config/fedora-mirror/pulp.toml")
#: Pulp's API path below the base URL (``API_ROOT`` setting, default ``/pulp/``).
DEFAULT_API_ROOT = "/pulp/"
#: Repository types searched by name, in order (pushed repos are plain ``container`` in 2.30).
CONTAINER_REPO_CONTEXTS = (PulpContainerRepositoryContext, PulpContainerPushRepositoryContext)

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


class _QuietContext(PulpContext):
    """pulp-glue's context for a library: no dots or "Started background task" on the terminal."""

    def echo(self, message: str, nl: bool = True, err: bool = False) -> None:
        pass


class PulpClient:
    """Promote container builds and publish (export) repositories through Pulp, on pulp-glue."""

    def __init__(self, config: PulpConfig | None = None, session: requests.Session | None = None, **kw: Any):
        """``PulpClient(config)`` or ``PulpClient(base_url=…, username=…, …)`` (merged with env/file).

        ``session`` is accepted for compatibility and ignored: pulp-glue owns the HTTP session.
        """
        self.config = c = config or load_config(kw.pop("config_file", None), **kw)
        auth = GlueAuthProvider(
            username=c.username,
            password=(c.password or "") if c.username is not None else None,
            cert=c.client_cert,
            key=c.client_key,
        )
        self.pulp_ctx: PulpContext = _QuietContext(
            api_root="/" + c.api_root.strip("/") + "/",
            api_kwargs={"base_url": c.base_url.rstrip("/"), "auth_provider": auth},
            verify_ssl=c.ca_bundle if c.ca_bundle else True,
        )
        self._plugin: bool | None = None

    @classmethod
    def from_profile(cls, profile: str | None = None) -> PulpClient:
        """A client from pulp-cli's ``cli.toml`` (``[cli]``, or ``[cli-<profile>]``)."""
        locations = [
            "/etc/pulp/cli.toml",
            (os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) + "/pulp/cli.toml",
        ]
        data: dict[str, Any] = {}
        for location in locations:
            try:
                doc = tomllib.loads(Path(location).read_text())
            except (FileNotFoundError, PermissionError):
                continue
            except tomllib.TOMLDecodeError as exc:
                raise PulpConfigError(f"cannot parse {location}: {exc}") from None
            data.update(doc.get("cli" if profile is None else f"cli-{profile}") or {})
        if not data:
            raise PulpConfigError(f"no pulp-cli profile {profile or 'cli'!r} in {' or '.join(locations)}")
        keys = {"base_url": "base_url", "username": "username", "password": "password", "cert": "client_cert"}
        keys.update({"key": "client_key", "api_root": "api_root"})
        explicit = {ours: data[theirs] for theirs, ours in keys.items() if theirs in data}
        if isinstance(data.get("verify_ssl"), str):
            explicit["ca_bundle"] = data["verify_ssl"]
        return cls(load_config(env={}, **explicit))

    # -- HTTP ------------------------------------------------------------------------------------

    @property
    def _session(self) -> requests.Session:
        """pulp-glue's HTTP session, set up once: error bodies recorded, a default timeout.

        Private pulp-glue API (``OpenAPI._session``): pulp-glue has no request timeout and no
        public response hook. Loads Pulp's API description on first use.
        """
        with self._errors():
            session = self.pulp_ctx.api._session
        if not getattr(session, "_fedora_mirror_tuned", False):
            keep_server_errors(self.pulp_ctx)
            session.request = functools.partial(session.request, timeout=self.config.request_timeout)
            session._fedora_mirror_tuned = True
        return session

    def _has_plugin(self) -> bool:
        """Whether Pulp has pulp_fedora_mirror; asks Pulp again before saying no.

        pulp-glue caches Pulp's API description (``$XDG_CACHE_HOME/squeezer/``) and never
        refreshes it by itself, so a cache from before the plugin was installed would hide it.
        """
        if self._plugin is None:
            self._session  # noqa: B018 (load the API, record error bodies)
            if not self.pulp_ctx.has_plugin(PluginRequirement(COMPONENT)):
                with self._errors():
                    self.pulp_ctx.api.load_api(refresh_cache=True)
            self._plugin = self.pulp_ctx.has_plugin(PluginRequirement(COMPONENT))
        return self._plugin

    def _who(self) -> str:
        return f"user {self.config.username!r}" if self.config.username else "anonymous request"

    def _unreachable(self, exc: BaseException) -> PulpError | None:
        """A PulpUnreachable for a connection-level failure anywhere in ``exc``'s chain."""
        for cause in _chain(exc):
            if isinstance(cause, requests.exceptions.SSLError):
                return PulpUnreachable(f"TLS error talking to {self.config.base_url}: {_reason(cause)}")
            if isinstance(cause, requests.exceptions.Timeout):
                return PulpUnreachable(
                    f"Pulp at {self.config.base_url} did not answer within {self.config.request_timeout:g}s"
                )
            if isinstance(cause, requests.exceptions.ConnectionError):
                return PulpUnreachable(f"cannot reach Pulp at {self.config.base_url}: {_reason(cause)}")
            if isinstance(cause, requests.exceptions.HTTPError) and cause.response is not None:
                status = cause.response.status_code  # the API description could not be fetched
                return PulpHTTPError(
                    f"cannot read Pulp's API description at {self.config.base_url}: HTTP {status}", status
                )
        return None

    class _ErrorTranslator:
        """Context manager turning pulp-glue/requests exceptions into our PulpError types."""

        def __init__(self, client: PulpClient) -> None:
            self.client = client

        def __enter__(self) -> None:
            return None

        def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
            if exc is None or isinstance(exc, PulpError):
                return False
            c = self.client
            if isinstance(exc, (PulpAuthenticationFailed, PulpNotAutorized)):
                what = "authentication failed" if exc.status_code == 401 else "permission denied"
                text = server_message(c.pulp_ctx, exc.status_code) or str(exc)
                raise PulpAuthError(f"{what} ({exc.status_code}, {c._who()}): {text}") from None
            if isinstance(exc, GlueHTTPError):
                op = f"{exc.operation_id} " if exc.operation_id else ""
                raise PulpHTTPError(
                    f"{op}failed: HTTP {exc.status_code}: {error_text(str(exc))}", exc.status_code
                ) from None
            unreachable = c._unreachable(exc)
            if unreachable is not None:
                raise unreachable from None
            if isinstance(exc, PulpException):
                raise PulpHTTPError(" ".join(str(exc).split())[:500], 0) from None
            return False

    def _errors(self) -> PulpClient._ErrorTranslator:
        return PulpClient._ErrorTranslator(self)

    def _url(self, path_or_href: str) -> str:
        if path_or_href.startswith(("http://", "https://")):
            return path_or_href
        if path_or_href.startswith("/"):  # an href from Pulp, already absolute on the server
            return self.config.base_url.rstrip("/") + path_or_href
        return self.config.api_url + path_or_href

    def request(self, method: str, path_or_href: str, **kwargs: Any) -> Any:
        """Any REST call by path or href (for what has no pulp-glue context); decoded JSON.

        Goes through pulp-glue's session (same TLS settings and client certificate); Basic
        credentials are added per request because pulp-glue authenticates per operation.
        """
        url = self._url(path_or_href)
        session = self._session
        if self.config.username is not None:
            kwargs.setdefault("auth", (self.config.username, self.config.password or ""))
        kwargs.setdefault("allow_redirects", False)
        try:
            r = session.request(method, url, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise (
                self._unreachable(exc) or PulpUnreachable(f"request to {url} failed: {_reason(exc)}")
            ) from None
        if r.status_code in (401, 403):
            what = "authentication failed" if r.status_code == 401 else "permission denied"
            raise PulpAuthError(f"{what} ({r.status_code}, {self._who()}): {error_text(r.content)}")
        if r.status_code >= 400:
            path = urllib.parse.urlsplit(url).path
            raise PulpHTTPError(
                f"{method} {path} failed: HTTP {r.status_code}: {error_text(r.content)}", r.status_code
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

    # -- lookups ---------------------------------------------------------------------------------

    def _repository_ctx(self, name: str | Mapping[str, Any]) -> PulpEntityContext:
        """pulp-glue context of the container repository ``name`` (or href, or Pulp's dict)."""
        self._session  # noqa: B018 (load the API, record error bodies)
        if isinstance(name, Mapping):
            name = str(name["pulp_href"])
        if name.startswith("/"):
            return PulpContainerRepositoryContext(self.pulp_ctx, pulp_href=name)
        with self._errors():
            for ctx_class in CONTAINER_REPO_CONTEXTS:
                ctx = ctx_class(self.pulp_ctx, entity={"name": name})
                try:
                    ctx.entity  # noqa: B018 (the lookup)
                except PulpEntityNotFound:
                    continue
                except PulpException as exc:
                    if ctx_class is not PulpContainerRepositoryContext and "operation" in str(exc).lower():
                        continue  # that repository type does not exist on this Pulp
                    raise
                return ctx
        raise PulpNotFound(f"no container repository named {name!r}")

    def _exporter_ctx(self, name: str | Mapping[str, Any]) -> PulpMirrorExporterContext:
        self._session  # noqa: B018 (load the API, record error bodies)
        with self._errors():
            if not self._has_plugin():
                raise PulpNotFound(
                    "this Pulp has no fedora_mirror exporter endpoint (is pulp_fedora_mirror installed?)"
                )
            if isinstance(name, Mapping):
                name = str(name["pulp_href"])
            if name.startswith("/"):
                return PulpMirrorExporterContext(self.pulp_ctx, pulp_href=name)
            ctx = PulpMirrorExporterContext(self.pulp_ctx, entity={"name": name})
            try:
                ctx.entity  # noqa: B018 (the lookup)
            except PulpEntityNotFound:
                raise PulpNotFound(f"no fedora_mirror exporter named {name!r}") from None
            return ctx

    def find_repository(self, name: str) -> dict[str, Any]:
        """The container repository called ``name`` (an href is fetched as is)."""
        with self._errors():
            return dict(self._repository_ctx(name).entity)

    def find_exporter(self, name: str) -> dict[str, Any]:
        """The fedora_mirror exporter called ``name`` (an href is fetched as is)."""
        with self._errors():
            return dict(self._exporter_ctx(name).entity)

    def check_exporter(self, name: str | Mapping[str, Any]) -> None:
        """Raise PulpNotFound for an unknown exporter name (nothing to check without the plugin:
        publish says then that it is missing)."""
        with self._errors():
            if self._has_plugin():
                self._exporter_ctx(name)

    def _task(self, data: Mapping[str, Any]) -> Task:
        href = data.get("pulp_href") or data.get("task")
        if not href or "/tasks/" not in str(href):
            raise PulpHTTPError(f"Pulp did not return a task: {dict(data)}", 200)
        return Task(str(href), dict(data) if "state" in data else {"state": "waiting"})

    # -- operations ------------------------------------------------------------------------------

    def promote(
        self,
        from_repo: str | Mapping[str, Any],
        to_repo: str | Mapping[str, Any],
        tags: Iterable[str],
        *,
        aliases: Iterable[str] = (),
        digest: str | None = None,
    ) -> Task:
        """Copy builds from one repository to another in ONE new version of ``to_repo``.

        ``tags`` are copied under their own names; ``digest`` names a build by manifest (list)
        digest instead; ``aliases`` are more tags for that one build (Bodhi's ``41-3`` + ``41`` +
        ``latest``). Everything the builds reference and their signatures come along
        (``POST /pulp/api/v3/fedora_mirror/promote/``). On a Pulp without pulp_fedora_mirror, plain
        tags fall back to pulp-container's ``copy_tags`` (no signatures).
        """
        names, extra = list(tags), list(aliases)
        if not names and digest is None:
            raise PulpConfigError("promote needs at least one tag (or a digest)")
        if digest is not None and not extra:
            raise PulpConfigError("a build given by digest needs at least one alias (the tag to create)")
        with self._errors():
            src = self._repository_ctx(from_repo)
            dst = self._repository_ctx(to_repo)
            if not self._has_plugin():
                if extra or digest is not None:
                    raise PulpNotFound(
                        "aliases and digests need pulp_fedora_mirror's promote endpoint on this Pulp"
                    )
                src_version = src.entity["latest_version_href"]
                body = {"source_repository_version": src_version, "names": names}
                task = dst.call(
                    "copy_tags", parameters={dst.HREF: dst.pulp_href}, body=body, non_blocking=True
                )
                return self._task(task)
            body: dict[str, Any] = {
                "source_repository": src.pulp_href,
                "destination_repository": dst.pulp_href,
                "tags": names,
                "aliases": extra,
            }
            if digest is not None:
                body["digest"] = digest
            return self._task(PulpMirrorPromoteContext(self.pulp_ctx).promote(body, non_blocking=True))

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
        with self._errors():
            # The repository first: its endpoint always exists, so bad credentials show up as 401
            # rather than as a missing plugin.
            if repository_version:
                body["repository_version"] = repository_version
            elif repository is not None:
                body["repository"] = self._repository_ctx(repository).pulp_href
            else:
                raise PulpConfigError("publish needs a repository or a repository version")
            exp = self._exporter_ctx(exporter)
            if name:
                body["name"] = name
            return self._task(PulpMirrorExportContext(self.pulp_ctx, exp.entity).run(body, non_blocking=True))

    def get_task(self, task: Task | str) -> Task:
        """Fetch the current state of a task (pulp-glue's ``tasks_read``)."""
        href = task.href if isinstance(task, Task) else task
        self._session  # noqa: B018 (error recording and timeout on the session)
        with self._errors():
            return Task(href, self.pulp_ctx.api.call("tasks_read", parameters={"task_href": href}))

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
        aliases: Iterable[str] = (),
        digest: str | None = None,
        progress_callback: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> tuple[Task, Task]:
        """Promote, wait, then publish exactly the repository version the promotion created.

        Exporting that version (not "latest") means a concurrent promotion cannot slip into this
        publish. If the tags were already there (no new version) the repository's latest is used.
        """
        started = time.monotonic()
        self.check_exporter(exporter)  # an unknown exporter fails before anything changes
        promoted = self.wait(
            self.promote(from_repo, to_repo, tags, aliases=aliases, digest=digest), progress_callback, timeout
        )
        versions = [h for h in promoted.created_resources if "/versions/" in h]
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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts (pulp-glue re-raises requests errors as its own)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


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
