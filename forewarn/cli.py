"""The ``forewarn`` command line: one sub-command per module in :mod:`forewarn.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed arguments, returns the exit code). Add a command by adding a
module and naming it in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from forewarn.errors import USER_ERRORS
from forewarn.text import plain

__all__ = ["COMMANDS", "build_parser", "main", "one_line"]

#: command modules under forewarn.commands, in the order --help lists them
COMMANDS: tuple[str, ...] = (
    "demo", "sim", "serve", "tokens", "edge", "fleet", "devices", "core", "rules", "outbox",
    "deadletters", "incidents", "ingest", "report", "inbox", "firmware",
    "score", "nab", "backfill", "backtest",
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every command registered, or with only the command that
    ``argv`` runs: each command module imports what it needs (the console, Alembic, numba
    kernels), and a process that runs one command (a worker, ``forewarn core``) need not import
    the others' (about 0.7 s of CPU at each start)."""
    parser = argparse.ArgumentParser(
        prog="forewarn",
        description=(
            "IoT telemetry engine for proactive support: spots a device fault while it is small, "
            "opens a support case and tells the customer before they call."
        ),
        epilog="Run 'forewarn COMMAND --help' for the options of a command.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument(
        "--config", metavar="TOML", type=Path, default=None,
        help="configuration file (default: ./forewarn.toml if present; "
        "FOREWARN_* environment variables override it)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = _command_of(argv) if argv is not None else None
    for name in COMMANDS if command is None else (command,):
        module = importlib.import_module(f"forewarn.commands.{name}")
        module.register(subparsers)
    _plain_help(parser)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, when it names one before any top-level help option.

    >>> _command_of(["--config", "core", "-v", "demo", "--help"]), _command_of(["-h", "core"])
    ('demo', None)
    >>> _command_of(["--config=x.toml", "nosuch"]), _command_of([])
    (None, None)
    """
    tokens = iter(argv)
    for token in tokens:
        if token in ("-h", "--help"):
            return None
        if token == "--config":
            next(tokens, None)
        elif not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Every description and help text in plain words: command modules take them from their
    docstrings, whose reST markup (````literal````, roles) is no part of a terminal's help."""
    parser.description = plain(parser.description) if parser.description else None
    parser.epilog = plain(parser.epilog) if parser.epilog else None
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help) if choice.help else choice.help
            for sub in action.choices.values():
                _plain_help(sub)


def one_line(exc: BaseException) -> str:
    r"""The error's message on one line: a message of several lines (one per problem in a rules
    file, a YAML parser's pointer) is joined with ``; ``.

    >>> one_line(ValueError("rules.yaml, line 4: rules.0.fro: Extra inputs\n  rules.0.for: ..."))
    'rules.yaml, line 4: rules.0.fro: Extra inputs; rules.0.for: ...'
    """
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forewarn`` script."""
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a reader gone away shows here, not as Python's note at exit
    except BrokenPipeError:
        # `forewarn outbox list | head`: stop quietly, as cat does (128 + SIGPIPE)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except USER_ERRORS as exc:
        print(f"forewarn: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
