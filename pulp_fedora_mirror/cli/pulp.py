"""``fedora-mirror promote | publish | release``: drive Pulp from a shell, a cron job or Bodhi.

Exit codes: 0 ok, 1 task failed (or timed out), 2 usage/config (also: unknown repository or
exporter), 3 authentication/permission, 4 Pulp unreachable or an HTTP error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from . import CliError


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Pulp connection (default: PULP_* env, then ~/.config/fedora-mirror/pulp.toml)")
    g.add_argument("--pulp-url", help="Pulp base URL, e.g. https://pulp.example.org (env PULP_URL)")
    g.add_argument("--username", help="HTTP basic user (env PULP_USERNAME)")
    g.add_argument("--password", help="HTTP basic password (env PULP_PASSWORD; prefer env/config over argv)")
    g.add_argument("--cert", help="TLS client certificate (env PULP_CLIENT_CERT)")
    g.add_argument("--key", help="TLS client key, if not inside --cert (env PULP_CLIENT_KEY)")
    g.add_argument("--ca-bundle", help="CA bundle to verify Pulp's certificate (env PULP_CA_BUNDLE)")
    g.add_argument("--config", help="config file (TOML [pulp] table or INI [pulp] section)")
    o = p.add_argument_group("output and waiting")
    o.add_argument("--no-wait", action="store_true", help="print the task and return without waiting")
    o.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    o.add_argument("--timeout", type=float, default=None, help="give up waiting after SECONDS (exit 1)")


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_repo", required=True, metavar="CANDIDATE_REPO")
    p.add_argument("--to", dest="to_repo", required=True, metavar="STABLE_REPO")
    p.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="TAG",
        help="a build by its source tag, copied under the same name (repeatable without --alias)",
    )
    p.add_argument(
        "--digest", metavar="sha256:HEX", help="the build by manifest (list) digest instead of --tag"
    )
    p.add_argument(
        "--alias",
        dest="aliases",
        action="append",
        default=[],
        metavar="TAG",
        help="another tag for the (single) build, repeatable: --alias 41 --alias latest (or testing)",
    )


def _check_build_args(args: argparse.Namespace) -> None:
    if not args.tags and not args.digest:
        raise CliError("give the build with --tag TAG (or --digest sha256:HEX)", 2)
    if args.tags and args.digest:
        raise CliError("give the build with --tag or --digest, not both", 2)
    if args.digest and not args.aliases:
        raise CliError("--digest needs at least one --alias (the tag to create)", 2)
    if args.aliases and len(args.tags) > 1:
        raise CliError("--alias names one build: give a single --tag (or --digest) with it", 2)


def register(subparsers: Any) -> None:
    """Add ``promote``, ``publish`` and ``release``."""
    p = subparsers.add_parser(
        "promote",
        help="copy a build from a candidate repository to a stable (or testing) one in Pulp",
        description="Copy builds (with all manifests, blobs and signatures they reference) between "
        "Pulp container repositories in ONE new repository version: --tag 41-3 --alias 41 --alias "
        "latest gives the build all three tags at once (Bodhi's scheme).",
    )
    _build_args(p)
    _common(p)
    p.set_defaults(func=run_promote)

    p = subparsers.add_parser(
        "publish",
        help="export a Pulp repository to the mirror tree with a fedora_mirror exporter",
        description="Export the latest version of a Pulp container repository with a fedora_mirror exporter.",
    )
    p.add_argument("--repository", required=True, metavar="STABLE_REPO")
    p.add_argument("--exporter", required=True, metavar="NAME")
    p.add_argument("--name", metavar="REGISTRY_NAME", help="registry name (default: the exporter's)")
    _common(p)
    p.set_defaults(func=run_publish)

    p = subparsers.add_parser(
        "release",
        help="promote, then publish the promoted repository version",
        description="promote + publish: the export uses exactly the repository version the promotion "
        "created. --no-wait still waits for the promotion, not for the export.",
    )
    _build_args(p)
    p.add_argument("--exporter", required=True, metavar="NAME")
    p.add_argument("--name", metavar="REGISTRY_NAME")
    _common(p)
    p.set_defaults(func=run_release)


class ProgressPrinter:
    """Shows a task's progress reports: a redrawn bar on a TTY, plain changed-state lines otherwise."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._state: str | None = None
        self._last_line_len = 0
        self._last_plain = 0.0

    def __call__(self, task: Any) -> None:
        """Progress callback for :meth:`PulpClient.wait`."""
        if task.state != self._state:
            self._end_bar()
            self._state = task.state
            self._write(f"task {task.href.rstrip('/').rsplit('/', 1)[-1]}: {task.state}\n")
        for report in task.progress_reports:
            key = str(report.get("code") or report.get("message"))
            done, total, state = report.get("done") or 0, report.get("total"), report.get("state")
            snapshot = (done, total, state)
            if self._seen.get(key) == snapshot:
                continue
            self._seen[key] = snapshot
            message = report.get("message") or key
            if self.tty:
                self._bar(message, done, total, state)
            elif state in ("completed", "failed", "canceled") or time.monotonic() - self._last_plain >= 2:
                self._last_plain = time.monotonic()
                amount = f"{done}/{total}" if total else f"{done}"
                self._write(f"  {message}: {amount} ({state})\n")
        if task.done:
            self._end_bar()

    def _bar(self, message: str, done: int, total: int | None, state: str | None) -> None:
        width = 30
        if total:
            filled = int(width * min(done, total) / total)
            line = f"\r  {message[:40]:40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            line = f"\r  {message[:40]:40} {done}"
        pad = " " * max(0, self._last_line_len - len(line))
        self._write(line + pad)
        self._last_line_len = len(line)
        if state in ("completed", "failed", "canceled"):
            self._end_bar()

    def _end_bar(self) -> None:
        if self.tty and self._last_line_len:
            self._write("\n")
            self._last_line_len = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _client(args: argparse.Namespace) -> Any:
    try:
        from pulp_fedora_mirror.client import PulpClient, PulpError, load_config
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "pulp_glue":
            raise CliError(
                "talking to Pulp needs pulp-glue: pip install 'pulp-fedora-mirror[cli]'", 2
            ) from None
        raise

    try:
        config = load_config(
            args.config,
            base_url=args.pulp_url,
            username=args.username,
            password=args.password,
            client_cert=args.cert,
            client_key=args.key,
            ca_bundle=args.ca_bundle,
        )
    except PulpError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    return PulpClient(config)


def _run(args: argparse.Namespace, action: Any) -> int:
    if args.timeout is not None and args.timeout <= 0:
        raise CliError("--timeout must be positive", 2)
    if hasattr(args, "aliases"):
        _check_build_args(args)
    client = _client(args)
    from pulp_fedora_mirror.client import PulpError

    progress = None if args.json else ProgressPrinter()
    try:
        result = action(client, progress)
    except PulpError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        for line in result.get("lines", []):
            print(line)
    return 0


def _task_json(task: Any) -> dict[str, Any]:
    return {"task": task.href, "state": task.state, "created_resources": task.created_resources}


def run_promote(args: argparse.Namespace) -> int:
    """``fedora-mirror promote``."""

    def action(client: Any, progress: Any) -> dict[str, Any]:
        task = client.promote(
            args.from_repo, args.to_repo, args.tags, aliases=args.aliases, digest=args.digest
        )
        if not args.no_wait:
            task = client.wait(task, progress, args.timeout)
        out = _task_json(task)
        tags = ", ".join([*args.tags, *([args.digest] if args.digest else []), *args.aliases])
        if args.no_wait:
            out["lines"] = [task.href]
        else:
            version = next((h for h in task.created_resources if "/versions/" in h), None)
            out["lines"] = [
                f"promoted {tags} from {args.from_repo} to {args.to_repo}: "
                + (f"new version {version}" if version else "nothing changed (tags already there)")
            ]
        if args.json:
            out.pop("lines")
        return out

    return _run(args, action)


def _publish_result(client: Any, task: Any, args: argparse.Namespace) -> dict[str, Any]:
    out = _task_json(task)
    if args.no_wait:
        out["lines"] = [task.href]
        return out
    export = client.export_summary(task)
    out["export"] = export
    summary = (export or {}).get("summary") or {}
    line = f"published {args.to_repo if hasattr(args, 'to_repo') else args.repository}"
    if summary:
        line += (
            f" as {summary.get('name')}: {len(summary.get('tags') or {})} tags, "
            f"{summary.get('manifests', 0)} manifests, {summary.get('blobs', 0)} blobs, "
            f"{summary.get('bytes_written', 0)} bytes written"
        )
    out["lines"] = [line + (f" (export {export.get('pulp_href')})" if export else "")]
    return out


def run_publish(args: argparse.Namespace) -> int:
    """``fedora-mirror publish``."""

    def action(client: Any, progress: Any) -> dict[str, Any]:
        task = client.publish(args.repository, args.exporter, args.name)
        if not args.no_wait:
            task = client.wait(task, progress, args.timeout)
        out = _publish_result(client, task, args)
        if args.json:
            out.pop("lines")
        return out

    return _run(args, action)


def run_release(args: argparse.Namespace) -> int:
    """``fedora-mirror release``: promote, wait, publish that version (wait unless --no-wait)."""

    def action(client: Any, progress: Any) -> dict[str, Any]:
        started = time.monotonic()
        client.check_exporter(args.exporter)  # an unknown exporter fails before anything changes
        promoted = client.wait(
            client.promote(args.from_repo, args.to_repo, args.tags, aliases=args.aliases, digest=args.digest),
            progress,
            args.timeout,
        )
        versions = [h for h in promoted.created_resources if "/versions/" in h]
        task = client.publish(
            args.to_repo, args.exporter, args.name, repository_version=versions[0] if versions else None
        )
        if not args.no_wait:
            left = None if args.timeout is None else max(1.0, args.timeout - (time.monotonic() - started))
            task = client.wait(task, progress, left)
        out = _publish_result(client, task, args)
        out["promote"] = _task_json(promoted)
        if args.json:
            out.pop("lines")
        return out

    return _run(args, action)
