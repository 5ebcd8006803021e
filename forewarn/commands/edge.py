"""``forewarn edge run --config edge.toml``: the edge agent of one real (or simulated) device.

Samples come from the ``[source]`` of the config (a firmware_sim device by default, a command or
a Python callable otherwise), go to the on-disk queue, and are sent to the broker with QoS 1.
The broker connection is reported on standard error as it changes ("connecting to …",
"connected to …", "cannot reach broker … retrying in N s": one line per attempt, spaced by the
backoff). SIGTERM or Ctrl-C stops sampling, queues the open batch and sends what it can within
``drain_timeout_s``; whatever is left stays on disk for the next start.
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

from forewarn.edge import load_edge_settings, run_agent

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``edge`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "edge", help="run the edge agent of one device",
        description="The device side: sample, store on disk, forward to the broker.",
    )
    actions = parser.add_subparsers(dest="edge_action", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="run one agent until stopped (SIGTERM/Ctrl-C)",
        description="Run one edge agent; see config/edge.example.toml for every setting. "
        "FOREWARN_EDGE_* environment variables override the file "
        "(FOREWARN_EDGE_BROKER__PASSWORD=...).",
    )
    run.add_argument("--config", dest="edge_config", type=Path, required=True, metavar="TOML",
                     help="the agent's settings (TOML)")
    run.add_argument("--max-samples", type=int, default=None, metavar="N",
                     help="stop after N samples (default: run until stopped)")
    run.add_argument("--json", action="store_true",
                     help="print what the run did as one JSON line at the end")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_edge_settings(args.edge_config)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        report = await run_agent(settings, stop, max_samples=args.max_samples,
                                 on_state=lambda line: _say(f"{settings.device_id}: {line}"))
        if args.json:
            print(json.dumps(dataclasses.asdict(report)), flush=True)
        else:
            print(f"{report.device_id}: {report.samples} samples this run, "
                  f"{report.queue_depth} records still queued", flush=True)
        return 0

    return asyncio.run(main())


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m forewarn.commands.edge run ...``: the command alone, without importing the
    rest of the application (what a device installs)."""
    parser = argparse.ArgumentParser(prog="forewarn")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["edge", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
