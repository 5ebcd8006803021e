"""``forewarn sim evaluate``: how often does the customer hear from us before they call?

Simulates a fleet with known faults, streams it in-process through the same core and rules code
the services run, matches the cases to the ground truth and prints the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from forewarn.errors import ForewarnError
from forewarn.text import paragraph

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``sim`` command (with its ``evaluate`` sub-command)."""
    sim: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="simulated fleets: evaluate detection against ground truth",
        description=paragraph(__doc__),
    )
    actions = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    ev: argparse.ArgumentParser = actions.add_parser(
        "evaluate", help="run a simulated fleet through detectors and rules; report lead times",
        description=(
            "Generates a fleet (heat pumps, home batteries, water pumps) with injected faults and "
            "a customer-call model, streams it through core's pipeline and the rules, and "
            "reports how many faults that caused a call were notified before the call, the lead "
            "times, and the false cases. The ground truth is written to OUT/ground_truth.jsonl."
        ),
    )
    ev.add_argument("--devices", type=int, default=100, help="fleet size (default 100)")
    ev.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    ev.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ev.add_argument("--fault-fraction", type=float, default=0.25,
                    help="share of devices that get a fault (default 0.25)")
    ev.add_argument("--rules", type=Path, default=Path("config/rules"), metavar="DIR",
                    help="folder of rules files, every *.yaml is loaded (default config/rules)")
    ev.add_argument("--batch-hours", type=float, default=6.0,
                    help="length of the batches streamed (default 6; notices are still timed "
                    "by the agents' 10-minute batches)")
    ev.add_argument("--fleet-faults", action="store_true",
                    help="also inject faults shared by a cohort: a firmware release degrading "
                    "heat pump compressors, a water pump production batch with weak bearings "
                    "and a heat wave over one region's water pumps (ground truth names them "
                    "in fleet_fault)")
    ev.add_argument("--agents", action="store_true",
                    help="simulated agents resolve every false case as a false alarm as it "
                    "opens, so the rules learn from them (compare the false-case rate of the "
                    "two halves)")
    ev.add_argument("--quirks", type=float, nargs="?", const=0.05, default=0.0, metavar="SHARE",
                    help="give this share (default 0.05) of the devices without a fault an "
                    "installation quirk: a heat source near a temperature sensor, used on one "
                    "day a week, that opens the same false case again and again (ground truth: "
                    "OUT/quirks.jsonl)")
    ev.add_argument("--workers", type=int, default=1,
                    help="processes, each streaming a share of the devices (default 1)")
    ev.add_argument("--out", type=Path, default=Path("var/sim"), metavar="DIR",
                    help="where the ground truth is written (default var/sim)")
    ev.add_argument("--json", type=Path, default=None, metavar="PATH",
                    help="also write the report as JSON here")
    ev.add_argument("--plots", type=Path, default=None, metavar="DIR",
                    help="write PNGs here: lead times per fault kind, a few device timelines")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    # numba compiles lazily and matplotlib is heavy: keep `forewarn --help` fast
    from firmware_sim.fleet import FLEET_FAULTS
    from forewarn.sim import EvalOptions, print_report, run_evaluation, write_plots
    from rules.errors import RuleFileError

    if args.devices < 1 or args.days <= 0:
        raise ForewarnError("--devices must be at least 1 and --days positive")
    if not 0.0 <= args.quirks <= 1.0:
        raise ForewarnError("--quirks is a share of the devices, between 0 and 1")
    if not args.rules.is_dir() or not any(args.rules.glob("*.yaml")):
        raise ForewarnError(f"no rules files (*.yaml) in {args.rules}")
    options = EvalOptions(devices=args.devices, days=args.days, seed=args.seed,
                          fault_fraction=args.fault_fraction, rules_dir=args.rules,
                          batch_s=args.batch_hours * 3600.0, workers=args.workers,
                          trace=4 if args.plots is not None else 0, agents=args.agents,
                          fleet_faults=FLEET_FAULTS if args.fleet_faults else (),
                          quirk_fraction=args.quirks)
    console = Console()
    try:
        bar = Console(stderr=True)
        with Progress(TextColumn("simulated time streamed"), BarColumn(),
                      TaskProgressColumn(), TimeElapsedColumn(), console=bar, transient=True,
                      disable=args.quiet or not bar.is_terminal) as progress:
            task = progress.add_task("streamed", total=1.0)
            evaluation = run_evaluation(
                options, out_dir=args.out,
                progress=lambda done: progress.update(task, completed=done))
    except RuleFileError as exc:
        raise ForewarnError(str(exc)) from exc
    print_report(evaluation.report, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(evaluation.report, indent=2) + "\n", encoding="utf-8")
        console.print(f"report written to {args.json}")
    if args.plots is not None:
        for path in write_plots(evaluation, args.plots):
            console.print(f"plot written to {path}")
    return 0

