"""``forewarn fleet --devices N``: many simulated edge agents in one process, for load tests.

Every device has its own MQTT connection (username = device id), its own disk queue under
``--queue-dir`` and streams at ``--rate`` samples per second until ``--duration`` is over or the
process gets SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from forewarn.edge_runner import BatchingSection, BrokerSection, run_fleet
from forewarn.text import plural

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``fleet`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fleet", help="run N simulated edge agents in one process (load tests)",
        description="Run a simulated fleet of edge agents against a real broker.",
    )
    parser.add_argument("--devices", type=int, default=10, help="how many agents (default 10)")
    parser.add_argument("--first-index", type=int, default=0,
                        help="index of the first simulated device (default 0: hp-0000)")
    parser.add_argument("--host", default="127.0.0.1", help="broker host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="broker port (default 1883)")
    parser.add_argument("--password", default=None,
                        help="password of every device (username = device id)")
    parser.add_argument("--tenant", default="demo", help="tenant of the devices (default demo)")
    parser.add_argument("--queue-dir", type=Path, default=Path("var/fleet"),
                        help="one queue file per device here (default var/fleet)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="samples per second per device (default 1)")
    parser.add_argument("--batch-samples", type=int, default=60,
                        help="samples per batch (default 60)")
    parser.add_argument("--batch-age", type=float, default=5.0,
                        help="seconds (wall clock) before a partial batch is sent (default 5)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until SIGTERM)")
    parser.add_argument("--status-interval", type=float, default=30.0,
                        help="seconds between status messages (default 30)")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="seconds to keep sending after the stop (default 30)")
    parser.add_argument("--backoff-cap", type=float, default=60.0,
                        help="longest reconnect delay in seconds (default 60; full jitter)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per device at the end")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        timer = loop.call_later(args.duration, stop.set) if args.duration else None
        runs = await run_fleet(
            args.devices, BrokerSection(host=args.host, port=args.port,
                                          backoff_cap_s=args.backoff_cap), args.queue_dir, stop,
            tenant=args.tenant, rate_hz=args.rate, seed=args.seed, password=args.password,
            batching=BatchingSection(max_samples=args.batch_samples, max_age_s=args.batch_age),
            status_interval_s=args.status_interval, drain_timeout_s=args.drain_timeout,
            first_index=args.first_index,
        )
        if timer is not None:
            timer.cancel()
        for run in runs:
            if args.json:
                print(json.dumps(dataclasses.asdict(run)))
        queued = sum(run.queue_depth for run in runs)
        if not args.json:
            print(f"{plural(len(runs), 'device')}, "
                  f"{sum(r.accepted_samples for r in runs)} samples "
                  f"accepted, {queued} records still queued")
        return 0

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    """``python -m forewarn.commands.fleet``: the command on its own (as benchmarks run it)."""
    parser = argparse.ArgumentParser(prog="forewarn")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
