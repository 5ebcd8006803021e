"""``forewarn demo``: the whole path on a simulated fleet, with a summary at the end."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from forewarn.demo import DemoOptions, broker_port, replace_run, run_demo
from forewarn.settings import Settings, load_settings
from forewarn.summary import print_summary

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run a simulated fleet with faults through the whole system and print a summary",
        description=(
            "Simulates a fleet of heat pumps (some develop a refrigerant leak), publishes their "
            "telemetry through edge agents to an MQTT broker (an embedded one unless "
            "[broker] embedded = false), detects anomalies, opens support cases, notifies "
            "customers, and prints what happened against the simulator's ground truth."
        ),
    )
    parser.add_argument("--devices", type=int, default=12, help="fleet size (default 12)")
    parser.add_argument("--hours", type=float, default=96.0,
                        help="simulated hours (default 96)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="simulated seconds per wall second (default 0: as fast as possible)")
    parser.add_argument("--out", type=Path, default=Path("var/demo"),
                        help="folder for the run's files (default var/demo); a new run "
                        "replaces it only once it has finished")
    parser.add_argument("--summary-json", type=Path, default=None, metavar="PATH",
                        help="also write the summary as JSON here")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print each notice or the progress bar")
    parser.add_argument("--serve", action="store_true",
                        help="afterwards keep the support console up on the run's cases "
                        "(prints the address and a login token; Ctrl-C stops it)")
    parser.add_argument("--port", type=int, default=None, metavar="PORT",
                        help="the embedded MQTT broker's port (0: any free port; default "
                        "[mqtt] port, 1883, or any free port when that one is in use)")
    parser.add_argument("--serve-port", type=int, default=None, metavar="PORT",
                        help="the console's port with --serve (default [serve] port: 8080)")
    parser.add_argument("--payload", choices=("native", "json", "sparkplug"), default="native",
                        help="how the fleet speaks: forewarn's own schema (default), or its own "
                        "payloads through a mapping: 'json' (arrays of readings on "
                        "demo/site-1/DEVICE/state) or 'sparkplug' (Sparkplug B births and "
                        "data by alias); see docs/connect.md")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = broker_port(load_settings(args.config), args.port)
    console = Console()
    # the run writes next to --out and replaces it at the end: a run that fails (a busy port,
    # Ctrl-C, a bad rules file) leaves the previous run as it was
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.new-", dir=args.out.parent))
    options = DemoOptions(
        devices=args.devices, hours=args.hours, seed=args.seed, speed=args.speed,
        out_dir=work, show_notices=not args.quiet, progress=not args.quiet,
        payload=args.payload,
    )
    try:
        summary = asyncio.run(run_demo(settings, options, console))
        replace_run(args.out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_dir = args.out
    print_summary(summary, console)
    if args.summary_json is not None:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    console.print(f"notices: {out_dir / 'notices.jsonl'}   cases: "
                  f"{out_dir / 'cases.sqlite'}   ground truth: "
                  f"{out_dir / 'ground_truth.jsonl'}")
    if args.serve:
        _serve(settings, out_dir, args.serve_port, console)
    return 0 if summary.samples_lost == 0 else 1


def _serve(settings: Settings, out_dir: Path, port: int | None, console: Console) -> None:
    """Keep the console up on the demo's files, with an admin token to log in."""
    from forewarn.console.server import CONSOLE, console_context, serve_console
    from forewarn.ports import listening_socket

    ctx = console_context(settings, demo_dir=out_dir)
    issued = ctx.tokens.create(settings.tenant, "admin", "demo")
    host, port = settings.serve.host, settings.serve.port if port is None else port
    sock = listening_socket(CONSOLE, host, port)  # in use: one line, not a token to no console
    port = sock.getsockname()[1]
    console.print(f"\nsupport console: [bold]http://{host}:{port}/login[/bold]  (Ctrl-C stops "
                  "it)\nlog in with this token:")
    print(issued.token, flush=True)  # plain: a terminal-wide line break would spoil copying it
    asyncio.run(serve_console(ctx, host, port, sock=sock))
