"""``fedora-mirror notifications``: list, flush or keep flushing the notification outbox.

Why a command: when the broker is down at export time the message waits in the spool directory;
an admin (or a systemd timer/service running ``--watch``) delivers it later.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import CliError


def register(subparsers: Any) -> None:
    """Add the ``notifications`` subcommand."""
    p = subparsers.add_parser(
        "notifications",
        help="list pending publish notifications, or deliver them (--flush, --watch)",
        description="List the messages waiting in the notification outbox; --flush tries to send them "
        "now, --watch keeps retrying. Exit code 1 if --flush left messages undelivered.",
    )
    p.add_argument("--spool", help="outbox directory (default: config 'spool_dir' or FEDORA_MIRROR_SPOOL)")
    p.add_argument(
        "--config",
        help="notification config TOML (default: FEDORA_MIRROR_NOTIFY_CONFIG, "
        "/etc/fedora-mirror/notify.toml)",
    )
    p.add_argument("--url", help="broker URL: amqp[s]://… (AMQP 0-9-1) or amqp1+amqp[s]://… (AMQP 1.0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--flush", action="store_true", help="try to deliver every pending message now")
    mode.add_argument("--watch", action="store_true", help="flush, then repeat every --interval seconds")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between --watch rounds (default 60)")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from pulp_fedora_mirror.notify import load_config

    try:
        return load_config(args.config, spool_dir=args.spool, url=args.url)
    except FileNotFoundError as exc:
        raise CliError(f"config file not found: {exc.filename}", code=2) from None
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise CliError(f"cannot read config {args.config}: {exc}", code=2) from None


def _flush_once(cfg: Any, as_json: bool) -> tuple[int, int]:
    from pulp_fedora_mirror.notify import flush

    if not cfg.url:
        raise CliError("no broker URL: give --url, FEDORA_MIRROR_AMQP_URL or 'url' in the config", code=2)
    try:
        sent, failed = flush(cfg)
    except ValueError as exc:
        raise CliError(str(exc), code=2) from None
    except TimeoutError as exc:
        raise CliError(str(exc), code=1) from None
    if as_json:
        print(json.dumps({"sent": sent, "failed": failed}))
    else:
        print(f"sent {sent}, not delivered {failed}")
    return sent, failed


def run(args: argparse.Namespace) -> int:
    """List, flush or watch."""
    from pulp_fedora_mirror.notify import Outbox

    cfg = _config(args)
    if args.flush:
        _, failed = _flush_once(cfg, args.json)
        return 1 if failed else 0
    if args.watch:
        while True:
            try:
                _flush_once(cfg, args.json)
            except CliError as exc:
                if exc.code == 2:
                    raise
                print(f"fedora-mirror: {exc}", file=sys.stderr)
            sys.stdout.flush()
            time.sleep(max(args.interval, 0.1))
    pending = Outbox(cfg.spool_dir).pending()
    if args.json:
        print(json.dumps([p.to_json() for p in pending], indent=1))
        return 0
    if not pending:
        print(f"no pending notifications in {cfg.spool_dir}")
        return 0
    for p in pending:
        err = f"  last error: {p.last_error}" if p.last_error else ""
        print(
            f"{p.message.id}  {p.enqueued_at}  {p.message.topic}  name={p.message.body.get('name')}  "
            f"export={p.message.body.get('export_id')}  attempts={p.attempts}{err}"
        )
    print(f"{len(pending)} pending in {cfg.spool_dir}")
    return 0
