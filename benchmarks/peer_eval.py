"""The peer detector on the simulator's halves: ``python benchmarks/peer_eval.py [--half tuning|
held-out|both] [--devices 100] [--days 8] [--batch-hours 6] [--set half_z=4 ...] [--json]``.

Runs ``forewarn sim evaluate --fleet-faults`` (the default detector, rules and ``[peer]``
settings, one worker: peers are compared within one process) on each seed of the half and sums
what the peer detector flagged (:mod:`forewarn.sim.peer_report`): the devices of the cohort-wide
faults (a firmware release degrading heat-pump compressors, a water-pump batch with weak
bearings) flagged after their onset and the median hours to the first flag, beside the cases'
median hours; the devices' own faults; false flags on healthy devices per 1000 healthy
device-days; and the default rules' false cases per 1000 device-days.

**The halves** (docs/detection_fleet.md): *tuning* seeds 11–20, *held-out* seeds 1–5. ``--set``
overrides ``[peer]`` keys; choose them on the tuning half only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.detect.peer_config import PeerConfig
from firmware_sim.fleet import FLEET_FAULTS
from forewarn.sim.run import evaluate

__all__ = ["HALVES", "main", "summarise"]

HALVES = {"tuning": tuple(range(11, 21)), "held-out": (1, 2, 3, 4, 5)}


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one half, summed over its seeds (medians: of the seeds' medians)."""
    total = {k: sum(r[k] for r in reports) for k in (
        "device_days", "false_cases", "fleet_fault_devices", "peer_fleet_fault_devices_flagged",
        "peer_own_fault_devices", "peer_own_fault_devices_flagged", "peer_false_flags",
        "peer_cohort_fleet_fault_devices_flagged", "peer_cohort_false_flags",
        "peer_false_flags_rollout_step", "peer_cohort_false_flags_rollout_step",
        "peer_drift_fleet_fault_devices_flagged", "peer_drift_false_flags")}
    healthy_days = sum((r["devices"] - r["faults"]) * (r["days"] - r["learn_days"])
                       for r in reports)

    def _med(key: str) -> float | None:
        values = [r[key] for r in reports if r.get(key) is not None]
        return round(median(values), 1) if values else None

    return {
        "seeds": [r["seed"] for r in reports],
        **total,
        "healthy_device_days": healthy_days,
        "false_cases_per_1000_device_days": round(1000 * total["false_cases"]
                                                  / total["device_days"], 2),
        "peer_false_flags_per_1000_healthy_device_days": round(
            1000 * total["peer_false_flags"] / healthy_days, 2),
        "peer_cohort_false_flags_per_1000_healthy_device_days": round(
            1000 * total["peer_cohort_false_flags"] / healthy_days, 2),
        "peer_drift_false_flags_per_1000_healthy_device_days": round(
            1000 * total["peer_drift_false_flags"] / healthy_days, 2),
        "peer_fleet_fault_median_h_after_onset": _med("peer_fleet_fault_median_h_after_onset"),
        "peer_drift_fleet_fault_median_h_after_onset": _med(
            "peer_drift_fleet_fault_median_h_after_onset"),
        "cases_fleet_fault_median_h_after_onset": _med("cases_fleet_fault_median_h_after_onset"),
        "peer_own_fault_median_h_after_onset": _med("peer_own_fault_median_h_after_onset"),
        "false_cases_by_rule": {rule: sum(r["false_cases_by_rule"].get(rule, 0) for r in reports)
                                for rule in sorted({k for r in reports
                                                    for k in r["false_cases_by_rule"]})},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the halves and print (or write) their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("tuning", "held-out", "both"), default="both")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--days", type=float, default=8.0)
    parser.add_argument("--batch-hours", type=float, default=6.0,
                        help="the evaluation streams batches this long (the peer detector "
                        "then waits this plus a bucket before judging one; default 6)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a [peer] key for this run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    peer = PeerConfig.model_validate({**PeerConfig().model_dump(), **overrides})
    halves = ("tuning", "held-out") if args.half == "both" else (args.half,)
    out: dict[str, Any] = {"devices": args.devices, "days": args.days,
                           "batch_hours": args.batch_hours, "peer": peer.model_dump()}
    for half in halves:
        reports = [evaluate(args.devices, args.days, seed, fleet_faults=FLEET_FAULTS, peer=peer,
                            batch_s=args.batch_hours * 3600.0)
                   for seed in HALVES[half]]
        out[half] = summarise(reports)
        out[half]["per_seed"] = {r["seed"]: {k: v for k, v in r.items()
                                             if k.startswith(("peer", "cases_", "false_cases"))}
                                 for r in reports}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for half in halves:
            print(half, json.dumps({k: v for k, v in out[half].items() if k != "per_seed"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
