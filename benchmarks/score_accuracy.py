"""How well ``forewarn score`` flags simulated devices with known faults (firmware_sim).

Each device's telemetry (one sample a minute, with the fleet's missing samples, clock skew
and firmware updates) is written to its own CSV and scored as a user would score an export:
``forewarn score FILE --warmup 1d`` (the default detector, the generic rule). With ``--rig`` the
devices are water pumps recorded for 1,150 s at 1 Hz (a test rig's runs, no imperfections),
the fault from about half-way, scored without ``--warmup`` (the first third is learnt). The
ground truth is the simulator's: a row is faulty where the injected fault's severity is above
zero.

Prints per-row precision and recall of ``alarm`` (over every row after the warm-up), the
detection delay of ``onset`` (first onset at or after the fault's start, per faulty device;
median and quartiles, hours), how many faulty devices were flagged at all, and the alarm
episodes on healthy devices. ``--json`` prints one JSON object.

    .venv/bin/python benchmarks/score_accuracy.py [--devices 30] [--days 7] [--seed 1]
        [--hold 10] [--rig] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from firmware_sim.fleet import Fleet, FleetConfig
from firmware_sim.imperfections import Imperfections
from forewarn.score import ReadOptions, ScoreOptions, score_file

_H = 3600.0


def fleet_of(devices: int, days: float, seed: int, rig: bool) -> Fleet:
    """The fleet: a week of mixed products a minute apart, or short 1 Hz pump recordings."""
    if rig:
        # a test rig: each run 1,150 s at 1 Hz, the fault from half-way, full within a minute
        return Fleet(FleetConfig(devices=devices, seed=seed, tenant="sim", product="water_pump",
                                 sample_period_s=1.0, horizon_s=1150.0, fault_fraction=0.5,
                                 onset_window=(0.45, 0.65), fault_ramp_s=60.0,
                                 imperfections=Imperfections.none()))
    horizon = days * 86_400.0
    first = min(0.5, 1.5 * 86_400.0 / horizon)  # faults start after the warm-up day
    return Fleet(FleetConfig(devices=devices, seed=seed, tenant="sim", horizon_s=horizon,
                             products=("heat_pump", "water_pump", "home_battery"),
                             fault_fraction=0.5, onset_window=(first, 0.7)))


def evaluate(devices: int, days: float, seed: int, warmup: str | None = "1d",
             hold: str = "10", rig: bool = False) -> dict[str, Any]:
    """Simulate, score each device's file, and compare with the ground truth."""
    fleet = fleet_of(devices, days, seed, rig)
    horizon = fleet.config.horizon_s
    unit = 1.0 if rig else _H  # delays in seconds for the rig, hours for the fleet
    tp = fp = fn = 0
    delays: list[float] = []
    missed: list[str] = []
    healthy_episodes = early_episodes = 0
    by_kind: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for device in fleet.devices:
            block = device.next_sim_block(horizon)
            keep = np.flatnonzero(block.present)
            path = Path(tmp, f"{device.device_id}.csv")
            columns = {"time": pa.array(block.t[keep])}
            for j, name in enumerate(device.product.fields):
                columns[name] = pa.array(block.values[keep, j])
            pa_csv.write_csv(pa.table(columns), path)
            scored = score_file(path, ReadOptions(), ScoreOptions(warmup=warmup, hold=hold))
            (result,) = scored.results
            (series,) = scored.telemetry.devices
            true_t = block.true_t[keep][series.rows]
            faulty = np.zeros(true_t.shape[0], dtype=np.bool_)
            if device.fault is not None:
                faulty = device.fault.severity(true_t) > 0.0
            judged = np.arange(true_t.shape[0]) >= result.warmup_rows
            alarm = result.alarm
            tp += int(np.sum(alarm & faulty & judged))
            fp += int(np.sum(alarm & ~faulty & judged))
            fn += int(np.sum(~alarm & faulty & judged))
            starts = true_t[result.onset]
            truth = device.truth
            if truth is None:
                healthy_episodes += int(starts.shape[0])
                continue
            kind = by_kind.setdefault(truth.kind, {"devices": 0, "flagged": 0})
            kind["devices"] += 1
            early_episodes += int(np.sum(starts < truth.onset))
            after = starts[starts >= truth.onset]
            if after.size:
                delays.append((float(after[0]) - truth.onset) / unit)
                kind["flagged"] += 1
            else:
                missed.append(f"{device.device_id} ({truth.kind})")
    faulty_devices = sum(k["devices"] for k in by_kind.values())
    q = np.percentile(delays, [25, 50, 75]).round(2).tolist() if delays else [None] * 3
    return {
        "devices": devices, "rig": rig, "days": None if rig else days, "seed": seed,
        "warmup": warmup, "hold": hold,
        "faulty_devices": faulty_devices, "flagged_faulty_devices": len(delays),
        "row_precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "row_recall": round(tp / (tp + fn), 3) if tp + fn else None,
        f"onset_delay_{'s' if rig else 'h'}_q25_median_q75": q,
        "episodes_on_healthy_devices": healthy_episodes,
        "episodes_before_fault_on_faulty_devices": early_episodes,
        "by_kind": by_kind, "missed": missed,
    }


def main() -> None:
    """Run the evaluation and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup", default=None,
                        help="rows or a duration (default: 1d, or the first third for --rig)")
    parser.add_argument("--rig", action="store_true",
                        help="short 1 Hz water-pump recordings (test-rig runs) instead")
    parser.add_argument("--hold", default="10", help="rows or a duration (the default rule)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None or args.rig else "1d"
    figures = evaluate(args.devices, args.days, args.seed, warmup, args.hold, args.rig)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
