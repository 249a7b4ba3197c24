"""pulp-cli plugin: ``pulp fedora-mirror exporter|export|prune|promote|release``.

Installed with the ``[cli]`` extra and found by pulp-cli through the ``pulp_cli.plugins`` entry
point (``fedora_mirror = pulp_fedora_mirror.pulpcli``). Everything pulp-cli offers comes for free:
``--base-url/--username/--password``, ``cli.toml`` profiles (``--profile``), ``--format json``,
``--background``, ``--help`` on every level. The REST side is in :mod:`pulp_fedora_mirror.glue`.
"""

from __future__ import annotations

import typing as t

import click
from pulp_cli.generic import (
    PulpCLIContext,
    PulpCommand,
    PulpGroup,
    destroy_command,
    href_option,
    list_command,
    name_option,
    pass_pulp_context,
    pulp_group,
    show_command,
)
from pulp_glue.common.exceptions import (
    PulpAuthenticationFailed,
    PulpException,
    PulpHTTPError,
    PulpNotAutorized,
)
from pulp_glue.container.context import PulpContainerRepositoryContext

from pulp_fedora_mirror.glue import (
    PulpMirrorExportContext,
    PulpMirrorExporterContext,
    PulpMirrorPromoteContext,
    error_text,
    keep_server_errors,
    server_message,
)


class _Command(PulpCommand):
    """A pulp-cli command whose HTTP errors read as the server's text, on one line.

    pulp-cli prints a 400 as the raw JSON body and a 401/403 as only "Operation … is not
    authorized." (pulp-glue drops the body); here both become Pulp's own words.
    """

    def invoke(self, ctx: click.Context) -> t.Any:
        pulp_ctx = ctx.find_object(PulpCLIContext)
        try:
            if pulp_ctx is not None:
                keep_server_errors(pulp_ctx)
            return super().invoke(ctx)
        except PulpHTTPError as exc:  # raised outside PulpCommand's own conversion
            raise click.ClickException(_http_message(pulp_ctx, exc)) from None
        except click.ClickException as exc:
            cause = exc.__context__
            if isinstance(cause, PulpHTTPError):
                raise click.ClickException(_http_message(pulp_ctx, cause)) from None
            raise
        except PulpException as exc:  # e.g. loading the API description failed
            raise click.ClickException(str(exc)) from None


def _http_message(pulp_ctx: PulpCLIContext | None, exc: PulpHTTPError) -> str:
    if isinstance(exc, (PulpAuthenticationFailed, PulpNotAutorized)):
        text = server_message(pulp_ctx, exc.status_code) if pulp_ctx is not None else ""
        return f"{exc} {text}".strip()
    return error_text(str(exc))


class _Group(PulpGroup):
    command_class = _Command


def _group(name: str | None = None, **kwargs: t.Any) -> t.Callable[..., _Group]:
    return pulp_group(name=name, cls=_Group, **kwargs)


pass_exporter_context = click.make_pass_decorator(PulpMirrorExporterContext)


def _exporter(pulp_ctx: PulpCLIContext, name_or_href: str) -> PulpMirrorExporterContext:
    """Exporter by name (or href); unknown names fail in one line when first used."""
    if name_or_href.startswith("/"):
        return PulpMirrorExporterContext(pulp_ctx, pulp_href=name_or_href)
    return PulpMirrorExporterContext(pulp_ctx, entity={"name": name_or_href})


def _repository(pulp_ctx: PulpCLIContext, name_or_href: str) -> PulpContainerRepositoryContext:
    """Container repository by name (or href)."""
    if name_or_href.startswith("/"):
        return PulpContainerRepositoryContext(pulp_ctx, pulp_href=name_or_href)
    return PulpContainerRepositoryContext(pulp_ctx, entity={"name": name_or_href})


@_group(
    name="fedora-mirror",
    short_help="Mirror exporters, promotion (pulp_fedora_mirror).",
    help="Mirror exporters (pulp_fedora_mirror): export, prune, promote, release.",
)
def fedora_mirror() -> None:
    pass


# -- exporter -----------------------------------------------------------------------------------


@fedora_mirror.group(cls=_Group, short_help="Create, list, show, update, destroy exporters.")
@pass_pulp_context
@click.pass_context
def exporter(ctx: click.Context, pulp_ctx: PulpCLIContext, /) -> None:
    """Manage fedora-mirror exporters (a mirror tree and its crane metadata directory)."""
    ctx.obj = PulpMirrorExporterContext(pulp_ctx)


lookup_options = [name_option, href_option]
exporter.add_command(
    list_command(
        cls=_Command,
        short_help="List exporters.",
        decorators=[click.option("--name", help="Filter by exact name.")],
    )
)
exporter.add_command(show_command(cls=_Command, short_help="Show an exporter.", decorators=lookup_options))
exporter.add_command(
    destroy_command(cls=_Command, short_help="Delete an exporter.", decorators=lookup_options)
)


def _exporter_fields(required: bool) -> t.Callable[[t.Any], t.Any]:
    """The exporter's fields as options (required for create, optional for update)."""
    options = [
        click.option(
            "--path", required=required, help="Top of the mirror tree, inside ALLOWED_EXPORT_PATHS."
        ),
        click.option(
            "--metadata-path", required=required, help="crane_fedora metadata directory (not mirrored)."
        ),
        click.option("--master-url", required=required, help="URL of the tree on the master mirror."),
        click.option("--mirror-url", help="URL of the tree behind the mirror redirector ('' clears it)."),
        click.option(
            "--module", help="MirrorManager module name ('' clears it; default: basename of --path)."
        ),
        click.option("--prune-grace", type=int, help="Seconds an unreferenced file is kept before prune."),
        click.option(
            "--allow-protected/--no-allow-protected",
            default=None,
            help="Allow protected repositories into the tree (administrators only).",
        ),
    ]

    def decorate(func: t.Any) -> t.Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _body(fields: dict[str, t.Any]) -> dict[str, t.Any]:
    """Only the options given; '' for a nullable field is sent as null (pulp-glue's NULLABLES)."""
    return {key: value for key, value in fields.items() if value is not None}


@exporter.command(name="create", short_help="Create an exporter.")
@click.option("--name", required=True, help="Name of the exporter.")
@_exporter_fields(required=True)
@pass_exporter_context
@pass_pulp_context
def create(
    pulp_ctx: PulpCLIContext, exporter_ctx: PulpMirrorExporterContext, /, name: str, **fields: t.Any
) -> None:
    """Create a fedora-mirror exporter."""
    pulp_ctx.output_result(exporter_ctx.create(body={"name": name, **_body(fields)}))


@exporter.command(name="update", short_help="Change some fields of an exporter.")
@name_option
@href_option
@_exporter_fields(required=False)
@pass_exporter_context
@pass_pulp_context
def update(pulp_ctx: PulpCLIContext, exporter_ctx: PulpMirrorExporterContext, /, **fields: t.Any) -> None:
    """Update a fedora-mirror exporter (only the options given); prints the updated exporter."""
    body = _body(fields)
    if not body:
        raise click.UsageError("nothing to update: give at least one option to change")
    exporter_ctx.update(body=body)
    pulp_ctx.output_result(exporter_ctx.entity)


# -- export -------------------------------------------------------------------------------------


@fedora_mirror.group(cls=_Group, short_help="Run exports, list export records.")
def export() -> None:
    """Run fedora-mirror exports and list their records."""


@export.command(name="run", short_help="Export a repository version to the tree.")
@click.option("--exporter", "exporter_name", required=True, help="Exporter name (or href).")
@click.option("--repository", required=True, help="Container repository name (or href).")
@click.option("--version", type=int, help="Repository version number (default: the latest).")
@click.option("--name", "registry_name", help="Registry name clients pull (default: the exporter's choice).")
@click.option("--background", is_flag=True, help="Print the task and return without waiting.")
@pass_pulp_context
def export_run(
    pulp_ctx: PulpCLIContext,
    /,
    exporter_name: str,
    repository: str,
    version: int | None,
    registry_name: str | None,
    background: bool,
) -> None:
    """Export a container repository version to the mirror tree (waits, showing progress)."""
    exporter_ctx = _exporter(pulp_ctx, exporter_name)
    repo_ctx = _repository(pulp_ctx, repository)
    body: dict[str, t.Any] = {}
    if version is None:
        body["repository"] = repo_ctx.pulp_href
    else:
        body["repository_version"] = repo_ctx.get_version_context(number=version).pulp_href
    if registry_name:
        body["name"] = registry_name
    export_ctx = PulpMirrorExportContext(pulp_ctx, exporter_ctx.entity)
    result = export_ctx.run(body, non_blocking=background)
    pulp_ctx.output_result(result)


@export.command(name="list", short_help="List an exporter's export records.")
@click.option("--exporter", "exporter_name", required=True, help="Exporter name (or href).")
@click.option("--limit", default=100, type=int, help="Show at most this many exports.")
@click.option("--offset", default=0, type=int, help="Skip this many exports.")
@pass_pulp_context
def export_list(pulp_ctx: PulpCLIContext, /, exporter_name: str, limit: int, offset: int) -> None:
    """List the export records of an exporter (newest first)."""
    export_ctx = PulpMirrorExportContext(pulp_ctx, _exporter(pulp_ctx, exporter_name).entity)
    pulp_ctx.output_result(export_ctx.list(limit=limit, offset=offset, parameters={}))


# -- prune --------------------------------------------------------------------------------------


@fedora_mirror.command(name="prune", short_help="Delete long-unreferenced tree files.")
@click.option("--exporter", "exporter_name", required=True, help="Exporter name (or href).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@pass_pulp_context
def prune(pulp_ctx: PulpCLIContext, /, exporter_name: str, dry_run: bool) -> None:
    """Remove tree files no metadata has referenced for the exporter's prune grace."""
    pulp_ctx.output_result(_exporter(pulp_ctx, exporter_name).prune(dry_run=dry_run))


# -- promote / release --------------------------------------------------------------------------


def _promote_options(func: t.Callable[..., t.Any]) -> t.Any:
    for decorator in reversed(
        [
            click.option(
                "--from", "source", required=True, help="Source (candidate) repository name or href."
            ),
            click.option(
                "--to", "destination", required=True, help="Destination (stable/testing) repository."
            ),
            click.option("--tag", help="The build: a tag of the source (also created in the destination)."),
            click.option("--digest", help="The build: a manifest (list) digest of the source."),
            click.option(
                "--alias",
                "aliases",
                multiple=True,
                help="Another tag for the build in the destination (repeatable), e.g. 41, latest.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def promote_body(
    pulp_ctx: PulpCLIContext,
    source: str,
    destination: str,
    tag: str | None,
    digest: str | None,
    aliases: t.Sequence[str],
) -> dict[str, t.Any]:
    """Request body of the promote endpoint from command-line names."""
    if (tag is None) == (digest is None):
        raise click.UsageError("give the build as exactly one of --tag or --digest")
    body: dict[str, t.Any] = {
        "source_repository": _repository(pulp_ctx, source).pulp_href,
        "destination_repository": _repository(pulp_ctx, destination).pulp_href,
        "aliases": list(aliases),
    }
    if tag is not None:
        body["tags"] = [tag]
    else:
        body["digest"] = digest
    return body


@fedora_mirror.command(name="promote", short_help="One build, all its tags, one version.")
@_promote_options
@pass_pulp_context
def promote(
    pulp_ctx: PulpCLIContext,
    /,
    source: str,
    destination: str,
    tag: str | None,
    digest: str | None,
    aliases: tuple[str, ...],
) -> None:
    """Give one build all its tags in ONE new version of the destination (with its signatures)."""
    body = promote_body(pulp_ctx, source, destination, tag, digest, aliases)
    pulp_ctx.output_result(PulpMirrorPromoteContext(pulp_ctx).promote(body))


@fedora_mirror.command(name="release", short_help="Promote, then export that version.")
@_promote_options
@click.option("--exporter", "exporter_name", required=True, help="Exporter that publishes the destination.")
@click.option("--name", "registry_name", help="Registry name clients pull (default: the exporter's choice).")
@pass_pulp_context
def release(
    pulp_ctx: PulpCLIContext,
    /,
    source: str,
    destination: str,
    tag: str | None,
    digest: str | None,
    aliases: tuple[str, ...],
    exporter_name: str,
    registry_name: str | None,
) -> None:
    """Promote (one new version with all tags), then export exactly that version."""
    exporter_ctx = _exporter(pulp_ctx, exporter_name)
    exporter_entity = exporter_ctx.entity  # an unknown exporter fails before anything changes
    body = promote_body(pulp_ctx, source, destination, tag, digest, aliases)
    promoted = PulpMirrorPromoteContext(pulp_ctx).promote(body)
    version = promoted.get("repository_version")
    export_body: dict[str, t.Any] = (
        {"repository_version": version} if version else {"repository": body["destination_repository"]}
    )
    if registry_name:
        export_body["name"] = registry_name
    exported = PulpMirrorExportContext(pulp_ctx, exporter_entity).run(export_body)
    pulp_ctx.output_result({"promote": promoted, "export": exported})


def mount(main: click.Group, **kwargs: t.Any) -> None:
    """pulp-cli's plugin hook: add ``pulp fedora-mirror``."""
    main.add_command(fedora_mirror)


__all__ = ["fedora_mirror", "mount"]
