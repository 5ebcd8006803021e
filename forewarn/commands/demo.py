"""``forewarn demo``: the whole path on a simulated fleet, with a summary at the end."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from forewarn.broker import BrokerError, free_port, port_in_use
from forewarn.demo import DemoOptions, run_demo
from forewarn.errors import ForewarnError
from forewarn.settings import Settings, load_settings
from forewarn.summary import DemoSummary

__all__ = ["print_summary", "register"]


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
    parser.set_defaults(func=_run)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def print_summary(summary: DemoSummary, console: Console) -> None:
    """The summary a person reads at a glance."""
    table = Table(title="forewarn demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, Any]] = [
        ("devices", summary.devices),
        ("samples published", summary.samples_published),
        ("samples ingested", summary.samples_ingested),
        ("samples lost", summary.samples_lost),
        ("duplicate batches dropped", summary.duplicates_dropped),
        ("messages dead-lettered", summary.dead_letters),
        ("faults injected", summary.faults_injected),
        ("cases opened", summary.cases_opened),
        ("notifications delivered", summary.notifications_sent),
        ("faults notified before the customer's call",
         f"{summary.faults_notified_before_call} of {summary.faults_with_call} that call"),
        ("false cases", summary.false_cases),
        ("wall time", f"{summary.wall_time_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if summary.cases:
        rules = sorted({c.rule for c in summary.cases})
        cases = Table(title="cases", title_justify="left",
                      caption=f"rule{'s' if len(rules) > 1 else ''}: {', '.join(rules)}",
                      caption_justify="left")
        for col in ("case", "device", "opened (simulated)", "fault behind it", "lead before call"):
            cases.add_column(col, overflow="fold")
        for c in summary.cases:
            opened = datetime.fromtimestamp(c.opened_at, tz=UTC).strftime("%m-%d %H:%M")
            lead = _hours(c.lead_time_s) if c.lead_time_s is not None else "-"
            cases.add_row(f"FW-{c.case_id}", c.device_id, opened,
                          c.fault_kind or "none (false case)", lead)
        console.print(cases)


def _broker_port(settings: Settings, requested: int | None) -> Settings:
    """Settings whose MQTT port the embedded broker can listen on now.

    A port given with ``--port`` that is in use is a one-line error; the configured port in
    use (another broker on 1883) moves the demo's own broker to a free port, with a note.
    """
    port = settings.mqtt.port if requested is None else requested
    if not 0 <= port <= 65535:
        raise ForewarnError(f"--port {port}: give a port from 0 (any free one) to 65535")
    if settings.broker.embedded and port and port_in_use(settings.mqtt.host, port):
        if requested is not None:
            raise BrokerError(f"--port {port}: {settings.mqtt.host}:{port} is in use (another "
                              "broker?): choose another port, or --port 0 for any free one")
        port = free_port(settings.mqtt.host)
        print(f"forewarn: note: {settings.mqtt.host}:{settings.mqtt.port} is in use: the "
              f"demo's broker listens on port {port} instead (--port chooses)", file=sys.stderr)
    elif not settings.broker.embedded and port == 0:
        raise ForewarnError("--port 0 (any free port) needs the embedded broker")
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": port})})


def _replace(target: Path, new: Path) -> None:
    """Put the finished run ``new`` where ``target`` was (the old run goes only now)."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    settings = _broker_port(load_settings(args.config), args.port)
    console = Console()
    # the run writes next to --out and replaces it at the end: a run that fails (a busy port,
    # Ctrl-C, a bad rules file) leaves the previous run as it was
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.new-", dir=args.out.parent))
    options = DemoOptions(
        devices=args.devices, hours=args.hours, seed=args.seed, speed=args.speed,
        out_dir=work, show_notices=not args.quiet, progress=not args.quiet,
    )
    try:
        summary = asyncio.run(run_demo(settings, options, console))
        _replace(args.out, work)
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
    from forewarn.console.server import console_context, serve_console

    ctx = console_context(settings, demo_dir=out_dir)
    issued = ctx.tokens.create(settings.tenant, "admin", "demo")
    host, port = settings.serve.host, settings.serve.port if port is None else port
    console.print(f"\nsupport console: [bold]http://{host}:{port}/login[/bold]  (Ctrl-C stops "
                  "it)\nlog in with this token:")
    print(issued.token, flush=True)  # plain: a terminal-wide line break would spoil copying it
    asyncio.run(serve_console(ctx, host, port))
