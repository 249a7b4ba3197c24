"""``fedora-mirror``: the stand-alone command line.

Each subcommand group lives in its own module with a ``register(subparsers)`` function that adds
its parsers and sets ``func`` (called with the parsed args, returns an exit code). Errors meant for
users are raised as :class:`CliError` and printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


class CliError(Exception):
    """An error for the user: printed as ``fedora-mirror: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand group."""
    parser = argparse.ArgumentParser(
        prog="fedora-mirror",
        description="Export container repositories to a mirror-friendly tree, check it, prune it, "
        "and drive Pulp promotions and publishes.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Imported here, not at the top: they import CliError from this module. In --help order.
    from pulp_fedora_mirror.cli import export, notifications, pulp

    for module in (export, pulp, notifications):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedora-mirror`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"fedora-mirror: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("fedora-mirror: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
