"""pulp-glue contexts for this plugin's REST API, shared by the pulp-cli plugin and ``client.py``.

The operation ids are the ones pulpcore generates for ``pulp_fedora_mirror/app/viewsets.py``
(``exporters_fedora_mirror_mirror_*`` for the exporter, ``…_exports_*`` for its exports,
``fedora_mirror_promote_create`` for the promote endpoint); ``tests/pulp/test_pulp_cli.py`` runs
them against a real Pulp. No Django or pulpcore import here: pulp-glue only.

:func:`keep_server_errors` and :func:`server_message` make up for one thing pulp-glue does not
do: on HTTP 401/403 it raises ``PulpAuthenticationFailed``/``PulpNotAutorized`` with only the
operation id and drops the server's own explanation (e.g. which permission is missing), which is
what an admin needs to read.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterable, Mapping

from pulp_glue.common.context import (
    EntityDefinition,
    PluginRequirement,
    PulpContext,
    PulpEntityContext,
    PulpViewSetContext,
)

#: The plugin's component name in Pulp's status / OpenAPI ``x-pulp-app-versions`` (app label).
COMPONENT = "fedora_mirror"


class PulpMirrorExporterContext(PulpEntityContext):
    """``/pulp/api/v3/exporters/fedora_mirror/mirror/``: one mirror tree + metadata directory."""

    ENTITY = "fedora-mirror exporter"
    ENTITIES = "fedora-mirror exporters"
    HREF = "fedora_mirror_mirror_exporter_href"
    ID_PREFIX = "exporters_fedora_mirror_mirror"
    HREF_PATTERN = r"exporters/(?P<plugin>fedora_mirror)/(?P<resource_type>mirror)/"
    NEEDS_PLUGINS = [PluginRequirement(COMPONENT)]
    NULLABLES = {"mirror_url", "module"}

    def prune(self, dry_run: bool = False, non_blocking: bool = False) -> t.Any:
        """``POST <exporter>prune/``: the task's summary (or the task if ``non_blocking``)."""
        return self.call(
            "prune",
            parameters={self.HREF: self.pulp_href},
            body={"dry_run": dry_run},
            non_blocking=non_blocking,
        )


class PulpMirrorExportContext(PulpEntityContext):
    """``<exporter href>exports/``: run an export, list/read/delete export records."""

    ENTITY = "fedora-mirror export"
    ENTITIES = "fedora-mirror exports"
    HREF = "fedora_mirror_mirror_mirror_export_href"
    ID_PREFIX = "exporters_fedora_mirror_mirror_exports"
    NEEDS_PLUGINS = [PluginRequirement(COMPONENT)]
    exporter: EntityDefinition

    def __init__(self, pulp_ctx: PulpContext, exporter: EntityDefinition | None = None) -> None:
        super().__init__(pulp_ctx)
        if exporter is not None:
            self.exporter = exporter

    @property
    def scope(self) -> dict[str, t.Any]:
        return {PulpMirrorExporterContext.HREF: self.exporter["pulp_href"]}

    def run(self, body: EntityDefinition, non_blocking: bool = False) -> t.Any:
        """Start an export: the export summary, or the task if ``non_blocking``.

        The summary is stored once, on the export record the finished task created (the task has
        no result), so it is read from there. Not ``create()``: that returns the whole record, and
        callers want what the export did.
        """
        task = self.call("create", parameters=self.scope, body=body, non_blocking=non_blocking)
        if non_blocking:
            return task
        self.pulp_href = next(h for h in task["created_resources"] if "/exports/" in h)
        return self.entity["summary"]


class PulpMirrorPromoteContext(PulpViewSetContext):
    """``POST /pulp/api/v3/fedora_mirror/promote/``: one build, all its tags, one version."""

    ID_PREFIX = "fedora_mirror_promote"
    NEEDS_PLUGINS = [PluginRequirement(COMPONENT)]

    def promote(self, body: EntityDefinition, non_blocking: bool = False) -> t.Any:
        """Dispatch the promote task; its result (or the task itself if ``non_blocking``)."""
        return self.call("create", body=body, non_blocking=non_blocking)


# -- the server's own error text ----------------------------------------------------------------


class _LastError:
    """Remembers the body of the latest HTTP error response seen on a session."""

    def __init__(self) -> None:
        self.status = 0
        self.text = ""

    def __call__(self, response: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if response.status_code >= 400:
            self.status = response.status_code
            self.text = error_text(response.content)
        return response


def keep_server_errors(pulp_ctx: PulpContext) -> _LastError:
    """Record error bodies on ``pulp_ctx``'s HTTP session (idempotent); returns the recorder.

    Uses pulp-glue's private ``OpenAPI._session`` (a ``requests.Session``): there is no public
    hook for responses. Loads the API description if that has not happened yet.
    """
    session = pulp_ctx.api._session
    for hook in session.hooks.setdefault("response", []):
        if isinstance(hook, _LastError):
            return hook
    recorder = _LastError()
    session.hooks["response"].append(recorder)
    return recorder


def server_message(pulp_ctx: PulpContext, status: int) -> str:
    """The recorded server text for the last error of ``status`` ('' if none)."""
    session = getattr(pulp_ctx._api, "_session", None)
    for hook in (session.hooks.get("response", []) if session is not None else []) or []:
        if isinstance(hook, _LastError) and hook.status == status:
            return hook.text
    return ""


def error_text(body: bytes | str) -> str:
    """Pulp's error body as one line (``{"detail": …}``, field errors, or a list of messages)."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(raw)
    except ValueError:
        return " ".join(raw.split())[:300]

    def flat(value: t.Any, prefix: str = "") -> Iterable[str]:
        if isinstance(value, Mapping):
            for k, v in value.items():
                yield from flat(v, "" if k in ("detail", "non_field_errors") else f"{k}: ")
        elif isinstance(value, list):
            for v in value:
                yield from flat(v, prefix)
        else:
            yield f"{prefix}{value}"

    return "; ".join(flat(doc))[:500]
