"""The ``writgate`` command line.

Each command group lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``handler`` (a function of the parsed arguments returning
the exit code). Expected failures print one line and exit 2 (input, usage, configuration) or 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from writgate.errors import ConfigError, InputError, NotFoundError, WritgateError

__all__ = ["main"]

# Command groups, one module each.
GROUPS = (
    "db",
    "demo",
    "serve",
    "runs",
    "policy",
    "passport",
    "keys",
    "forge",
    "run",
    "pipeline",
    "worker",
    "review",
    "gate",
    "openapi",
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one readable line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    """The full parser with every command group."""
    parser = Parser(prog="writgate", description="Supervisor/judge pipelines for coding agents.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name in GROUPS:
        importlib.import_module(f"writgate.app.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (InputError, ConfigError, NotFoundError) as exc:
        print(f"writgate: error: {exc}", file=sys.stderr)
        return 2
    except WritgateError as exc:
        print(f"writgate: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("writgate: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
