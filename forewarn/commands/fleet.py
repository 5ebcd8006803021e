"""``forewarn fleet``: many simulated edge agents in one process, against a real MQTT broker.

With ``--hours H`` the demo's fleet lives H hours of simulated time, ``--speed S`` times faster
than real time, and the command ends by itself once everything is acknowledged; without it the
devices stream in real time (``--rate``) until ``--duration`` is over or SIGTERM/Ctrl-C.
The logic lives in :mod:`forewarn.fleet`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forewarn.edge import AgentRun, BatchingSection, BrokerSection
from forewarn.errors import ConfigError
from forewarn.settings import Settings, load_settings
from forewarn.text import plural

if TYPE_CHECKING:
    from firmware_sim.fleet import SimDevice

__all__ = ["register"]

_DESCRIPTION = """\
Run a simulated fleet of edge agents against a real MQTT broker (Mosquitto): one MQTT
connection, one disk queue and one identity per device (username = device id).

Simulated time (--hours): the demo's fleet (its products, faults and imperfections; the same
--seed gives the same fleet) lives H hours of device life, --speed S times faster than real
time, e.g. --hours 48 --speed 3600 publishes two days in 48 seconds. Simulated time starts at
--start; by default the simulated hours end when the run does (start = now - H + H/S, rounded
down to the hour), so no sample is ever in the future and --speed 1 is live. The ground truth
(which device has which fault, when its customer calls, as epoch seconds of simulated time) is
written to --truth first. The command ends by itself once the simulated hours are published
and every message is acknowledged by the broker (QoS 1), after the devices have said goodbye
(status offline); exit code 1 if messages were left unacknowledged.

Load test (no --hours): devices stream --rate samples a second until --duration is over or
SIGTERM/Ctrl-C.

The broker is [mqtt] host/port of --config (or --host/--port). Passwords: --credentials FILE
(or [fleet] credentials_file) with one "device_id password" line per device, as
`forewarn devices add` prints them; else [fleet] password for every device. Progress goes to
standard error.
"""

_EPILOG = """\
example, against a Mosquitto with a password per device:
  for i in 0 1 2 3; do forewarn devices add hp-000$i --mosquitto-passwd passwd; done \\
      > fleet.credentials
  forewarn fleet --config forewarn.toml --credentials fleet.credentials \\
      --devices 4 --hours 48 --speed 3600 --seed 7 --truth truth.jsonl
"""


def register(subparsers: Any) -> None:
    """Add the ``fleet`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fleet", help="simulated devices against a real broker (simulated time or load test)",
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", dest="fleet_config", type=Path, default=None,
                        metavar="TOML", help="configuration file ([mqtt], [fleet], tenant)")
    parser.add_argument("--devices", type=int, default=10, help="how many devices (default 10)")
    parser.add_argument("--first-index", type=int, default=0,
                        help="index of the first simulated device (default 0: hp-0000); "
                        "several processes can share a fleet")
    parser.add_argument("--seed", type=int, default=7,
                        help="simulation seed (default 7, the demo's): same seed, same fleet")
    timing = parser.add_argument_group("simulated time")
    timing.add_argument("--hours", type=float, default=None,
                        help="simulated hours to publish, then end by itself")
    timing.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second (default 1; 0: as fast as the "
                        "broker takes it)")
    timing.add_argument("--start", default=None, metavar="WHEN",
                        help="simulated start: ISO 8601 (2026-01-01T00:00Z), epoch seconds or "
                        "'now' (default: now - H + H/S, rounded down to the hour: the "
                        "simulated hours end with the run)")
    timing.add_argument("--truth", type=Path, default=None, metavar="FILE",
                        help="write the ground truth here (JSON lines, one per injected fault)")
    timing.add_argument("--products", default=None, metavar="P1,P2",
                        help="product types to mix (default: the demo's heat pumps)")
    timing.add_argument("--batch-samples", type=int, default=30,
                        help="samples per batch (default 30, the demo's: one a minute)")
    timing.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                        help="give up when devices cannot log in within S seconds (default 30)")
    timing.add_argument("--list", action="store_true",
                        help="print the fleet's device ids and products, publish nothing")
    broker = parser.add_argument_group("broker and credentials")
    broker.add_argument("--host", default=None, help="broker host (default [mqtt] host)")
    broker.add_argument("--port", type=int, default=None, help="broker port (default [mqtt] port)")
    broker.add_argument("--credentials", type=Path, default=None, metavar="FILE",
                        help="'device_id password' lines ([fleet] credentials_file)")
    broker.add_argument("--password", default=None,
                        help="one password for every device (visible in ps: prefer "
                        "--credentials or [fleet] password)")
    broker.add_argument("--tenant", default=None, help="tenant of the devices (default tenant)")
    broker.add_argument("--queue-dir", type=Path, default=None,
                        help="one queue file per device here ([fleet] queue_dir; default: a "
                        "temporary directory)")
    broker.add_argument("--backoff-cap", type=float, default=60.0,
                        help="longest reconnect delay in seconds (default 60; full jitter)")
    load = parser.add_argument_group("load test (without --hours)")
    load.add_argument("--rate", type=float, default=1.0,
                      help="samples per second per device (default 1)")
    load.add_argument("--batch-age", type=float, default=5.0,
                      help="seconds (wall clock) before a partial batch is sent (default 5)")
    load.add_argument("--duration", type=float, default=None,
                      help="stop after this many seconds (default: until SIGTERM)")
    parser.add_argument("--status-interval", type=float, default=30.0,
                        help="seconds between status messages (default 30)")
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="seconds to keep sending after the end or a stop (default: "
                        "until acknowledged with --hours, 30 otherwise)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line per device at the end")
    parser.set_defaults(func=_run)


def parse_start(text: str | None, hours: float = 0.0, speed: float = 0.0,
                clock: Callable[[], float] = time.time) -> float:
    """Epoch seconds of ``--start``: ISO 8601, epoch seconds, ``now``, or by default the start
    that makes the simulated hours end when the run does (``now - H + H / S``, rounded down
    to the hour): no sample is ever in the future, and at ``--speed 1`` the fleet is live.

    >>> parse_start("2026-01-01T00:00Z"), parse_start("1767225600")
    (1767225600.0, 1767225600.0)
    >>> parse_start(None, hours=48, speed=3600, clock=lambda: 1767398399.0)  # 2026-01-02 23:59
    1767225600.0
    >>> parse_start(None, hours=2, speed=1, clock=lambda: 1767229199.0)
    1767225600.0
    """
    if text is None:
        ends = hours * 3600.0 / speed if speed > 0 else 0.0
        return math.floor((clock() - hours * 3600.0 + ends) / 3600.0) * 3600.0
    if text == "now":
        return float(math.floor(clock()))
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--start {text!r}: not ISO 8601, epoch seconds or 'now'") from exc
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _settings(args: argparse.Namespace) -> Settings:
    path = args.fleet_config or (Path(args.config) if getattr(args, "config", None) else None)
    return load_settings(path)


def _broker(args: argparse.Namespace, settings: Settings) -> BrokerSection:
    return BrokerSection(host=args.host or settings.mqtt.host,
                         port=args.port or settings.mqtt.port, backoff_cap_s=args.backoff_cap)


def _passwords(args: argparse.Namespace, settings: Settings,
               device_ids: list[str]) -> dict[str, str | None]:
    from forewarn.fleet import device_passwords, load_credentials

    if args.password is not None:
        print("forewarn: warning: --password shows in ps and the shell history; prefer "
              "--credentials FILE or [fleet] password", file=sys.stderr)
    path = args.credentials or settings.fleet.credentials_file
    credentials = load_credentials(path) if path is not None else None
    return device_passwords(device_ids, credentials, args.password or settings.fleet.password)


def _check(args: argparse.Namespace) -> None:
    if args.devices < 1:
        raise ConfigError("--devices must be at least 1")
    if args.hours is not None and args.hours <= 0:
        raise ConfigError("--hours must be more than 0")
    if args.speed < 0:
        raise ConfigError("--speed must be 0 (unpaced) or more")
    if args.hours is None and args.rate <= 0:
        raise ConfigError("--rate must be more than 0")


def _run(args: argparse.Namespace) -> int:
    _check(args)
    settings = _settings(args)
    queue_dir = args.queue_dir or settings.fleet.queue_dir
    temporary = None
    if queue_dir is None and not args.list:
        temporary = tempfile.mkdtemp(prefix="forewarn-fleet-")
        queue_dir = Path(temporary)
    try:
        if args.hours is None:
            return _load_test(args, settings, queue_dir or Path("var/fleet"))
        return _simulated(args, settings, queue_dir or Path("var/fleet"))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _simulated(args: argparse.Namespace, settings: Settings, queue_dir: Path) -> int:
    from forewarn.fleet import DEMO_FAULT_KINDS, FleetPlan, FleetProgress, demo_fleet, drive_fleet

    products = tuple(p for p in (args.products or "").split(",") if p)
    plan = FleetPlan(devices=args.devices, hours=args.hours, seed=args.seed,
                     start=parse_start(args.start, args.hours, args.speed),
                     tenant=args.tenant or settings.tenant,
                     first_index=args.first_index, products=products,
                     fault_kinds=() if products else DEMO_FAULT_KINDS)
    try:
        fleet = demo_fleet(plan)
    except KeyError as exc:
        raise ConfigError(f"--products: unknown product {exc}") from exc
    devices = fleet.devices[args.first_index:]
    if args.list:
        return _list_devices(devices)
    passwords = _passwords(args, settings, [d.device_id for d in devices])
    if args.truth is not None:
        truths = [d.truth for d in devices if d.truth is not None]
        from firmware_sim.truth import write_jsonl

        write_jsonl(args.truth, truths)
    broker = _broker(args, settings)
    start_text = datetime.fromtimestamp(plan.start, UTC).strftime("%Y-%m-%d %H:%M UTC")
    _say(f"fleet: {len(devices)} devices of tenant {plan.tenant!r} → {broker.host}:"
         f"{broker.port}, {args.hours:g} simulated hours from {start_text} at "
         f"{args.speed:g}× real time, seed {args.seed}, {len(fleet.ground_truth)} faults")
    last = [0.0]

    def progress(state: FleetProgress) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and state.simulated_s < state.horizon_s:
            return
        last[0] = now
        phase = "waiting for acknowledgements" if state.draining else "publishing"
        _say(f"fleet: {state.simulated_s / 3600:.1f} of {state.horizon_s / 3600:g} simulated "
             f"hours, {state.acked_records} messages acknowledged, {state.queued_records} "
             f"queued, {state.connected}/{state.devices} connected ({phase})")

    async def main() -> int:
        stop = _stop_event()
        report = await drive_fleet(
            fleet, broker, queue_dir, stop, speed=args.speed, passwords=passwords,
            first_index=args.first_index, batch_samples=args.batch_samples,
            status_interval_s=args.status_interval, connect_timeout_s=args.connect_timeout,
            drain_timeout_s=args.drain_timeout, on_progress=progress)
        _print_runs(report.runs, args.json)
        left = report.queued_records
        _say(f"fleet: done, {report.simulated_s / 3600:g} simulated hours in "
             f"{report.wall_s:.1f} s, {left} messages unacknowledged")
        return 0 if left == 0 else 1

    return asyncio.run(main())


def _load_test(args: argparse.Namespace, settings: Settings, queue_dir: Path) -> int:
    from forewarn.fleet import load_test_fleet, run_fleet

    fleet = load_test_fleet(args.devices, args.seed, args.tenant or settings.tenant, args.rate,
                            args.first_index)
    devices = fleet.devices[args.first_index:]
    if args.list:
        return _list_devices(devices)
    passwords = _passwords(args, settings, [d.device_id for d in devices])

    async def main() -> int:
        stop = _stop_event()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(args.duration, stop.set) if args.duration else None
        runs = await run_fleet(
            fleet, _broker(args, settings), queue_dir, stop, passwords=passwords,
            first_index=args.first_index,
            batching=BatchingSection(max_samples=args.batch_samples, max_age_s=args.batch_age),
            status_interval_s=args.status_interval,
            drain_timeout_s=30.0 if args.drain_timeout is None else args.drain_timeout,
        )
        if timer is not None:
            timer.cancel()
        _print_runs(runs, args.json)
        return 0

    return asyncio.run(main())


def _list_devices(devices: Sequence[SimDevice]) -> int:
    """``--list``: the devices the fleet would run, one a line, and nothing sent."""
    for device in devices:
        print(f"{device.device_id} {device.product.name}")
    return 0


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _print_runs(runs: list[AgentRun], as_json: bool) -> None:
    if as_json:
        for run in runs:
            print(json.dumps(dataclasses.asdict(run)))
        return
    queued = sum(run.queue_depth for run in runs)
    print(f"{plural(len(runs), 'device')}, {sum(r.accepted_samples for r in runs)} samples "
          f"accepted, {queued} records still queued", flush=True)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m forewarn.commands.fleet``: the command on its own (as benchmarks run it)."""
    from forewarn.cli import main as cli_main

    return cli_main(["fleet", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
