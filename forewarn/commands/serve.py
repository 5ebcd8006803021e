"""``forewarn serve``: the support console and REST API (docs/console.md)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from forewarn.casedb import case_db_url
from forewarn.console.server import CONSOLE, console_context, serve_console
from forewarn.ports import listening_socket
from forewarn.service import load_configured
from forewarn.settings import load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the support console and REST API",
        description=(
            "Serves the support console (case queue, case pages with telemetry charts, fleet) "
            "and the REST API under /api/v1 (OpenAPI at /docs, Prometheus at /metrics). "
            "Log in with a token from 'forewarn tokens create'."
        ),
    )
    parser.add_argument("--host", default=None,
                        help="address to bind (default [serve] host: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default [serve] port: 8080)")
    parser.add_argument("--demo-dir", type=Path, default=None, metavar="DIR",
                        help="serve a demo run's files (e.g. var/demo) instead of the "
                        "configured database and store")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    load_configured(settings)  # the registry, rules and channels the console's actions name
    case_db_url(settings, args.demo_dir)  # a --demo-dir without a run is a one-line error
    ctx = console_context(settings, demo_dir=args.demo_dir)
    host = args.host or settings.serve.host
    port = settings.serve.port if args.port is None else args.port
    sock = listening_socket(CONSOLE, host, port)  # in use: one line, before saying where
    port = sock.getsockname()[1]  # --port 0: the one picked
    print(f"forewarn console on http://{host}:{port}/  (API docs: /docs, metrics: /metrics)")
    asyncio.run(serve_console(ctx, host, port, sock=sock))
    return 0
