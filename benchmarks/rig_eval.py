"""Small devices (2-8 fields) on rig-like runs: ``python benchmarks/rig_eval.py [--json]``.

Proxies for a pump test rig we do not have (8 sensors at 1 Hz, runs of ~1,100 rows, faults over
a third to a half of a run, scored with ``forewarn score FILE --warmup 400``). Both stream each
run through :func:`forewarn.score.run.score_device` (what ``forewarn score`` runs: the default
``DetectorConfig()`` and the generic rules) with a 400-row warm-up, and score the ``alarm``
column per row after the warm-up: precision, recall (detection rate), F1 and the false-alarm
rate (alarmed share of normal rows), pooled over the runs of a half, beside the F1 of alarming
on every row.

- **TEP, 8 variables**: ``SUBSETS`` fixed random subsets of 8 of the 52 Tennessee Eastman
  variables (``numpy.random.default_rng(SUBSET_SEED)``, sorted, listed in ``--json``). A run is
  ``d00.dat``'s 500 normal rows (the first 400 are the warm-up, the other 100 are judged as
  normal) followed by one test file (``dNN_te.dat``: 160 normal rows, then 800 with the fault;
  ``d00_te.dat``: 960 normal rows). *Tuning* = odd faults, *held-out* = even faults (3, 9 and
  15 are left out, undetectable); ``d00_te`` runs count in both halves' false-alarm rates.
- **Simulated rig**: ``benchmarks/score_accuracy.py --rig``'s water pumps (5 fields, 1,150 s
  at 1 Hz, half the runs faulty from 45-65 % of the run), scored with ``--warmup 400``. Tuning
  seed ``RIG_TUNING_SEED``, held-out seed ``RIG_HELD_OUT_SEED``.
- **Hard rig** (``hard_rig``): ``benchmarks/rig_hard.py``'s 8-sensor pump runs built to the real
  rig's description (about half the judged rows anomalous, faults of 2-6 warm-up spreads on
  two to four sensors, most lasting to the end of the run); same seeds and run count.

    python benchmarks/rig_eval.py [--tep-only | --sim-only | --hard-only]
        [--half tuning|held_out|both]
        [--subsets 6] [--devices 40] [--config FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import rig_hard
from benchmarks.score_accuracy import fleet_of
from benchmarks.tep_eval import DEFAULT_DATA, FIELDS, HELD_OUT, TUNING, UNDETECTABLE, load
from core.detect import DetectorConfig
from forewarn.score.read import DeviceSeries
from forewarn.score.run import ScoreOptions, score_device

__all__ = ["Counts", "main", "subsets"]

WARMUP = 400
SUBSET_SEED = 17
SUBSETS = 6
RIG_TUNING_SEED = 11
RIG_HELD_OUT_SEED = 1
TEP_INTERVAL_S = 1.0  # the rig's 1 Hz: the hold is 10 rows either way


@dataclass(slots=True)
class Counts:
    """Pooled per-row counts after the warm-up."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, alarm: NDArray[np.bool_], faulty: NDArray[np.bool_]) -> None:
        """Count one run's judged rows."""
        self.tp += int(np.sum(alarm & faulty))
        self.fp += int(np.sum(alarm & ~faulty))
        self.fn += int(np.sum(~alarm & faulty))
        self.tn += int(np.sum(~alarm & ~faulty))

    def figures(self) -> dict[str, float | int | None]:
        """Precision, recall, F1, false-alarm rate, and F1 of alarming on every row."""
        pos, neg = self.tp + self.fn, self.fp + self.tn
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / pos if pos else None
        f1 = (2 * self.tp / (2 * self.tp + self.fp + self.fn)) if self.tp else 0.0
        always = 2 * pos / (2 * pos + neg) if pos else None
        return {"f1": round(f1, 3), "precision": None if precision is None else round(precision, 3),
                "recall": None if recall is None else round(recall, 3),
                "far": round(self.fp / neg, 3) if neg else None,
                "f1_alarm_every_row": None if always is None else round(always, 3),
                "faulty_rows": pos, "normal_rows": neg}


def subsets(count: int, seed: int = SUBSET_SEED) -> list[list[int]]:
    """The fixed subsets of 8 TEP variables (0-based column numbers, sorted)."""
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(len(FIELDS), 8, replace=False).tolist()) for _ in range(count)]


def _alarm(x: NDArray[np.float64], fields: tuple[str, ...], config: DetectorConfig,
           interval: float) -> NDArray[np.bool_]:
    n = x.shape[0]
    series = DeviceSeries("rig", np.arange(n, dtype=np.int64),
                          np.arange(n, dtype=np.float64) * interval, x)
    result = score_device(series, fields, ScoreOptions(config=config, warmup=str(WARMUP)))
    return result.alarm


def tep(config: DetectorConfig, halves: list[str], n_subsets: int,
        data: Path = DEFAULT_DATA) -> dict[str, Any]:
    """Per-row figures of the TEP 8-variable runs, per half."""
    train = load(data, "d00.dat")
    chosen = subsets(n_subsets)
    faults = {"tuning": [f for f in TUNING if f not in UNDETECTABLE],
              "held_out": [f for f in HELD_OUT if f not in UNDETECTABLE]}
    needed = sorted({0, *(f for h in halves for f in faults[h])})
    tests = {f: load(data, f"d{f:02d}_te.dat") for f in needed}
    per_file: dict[int, Counts] = {f: Counts() for f in needed}
    for cols in chosen:
        names = tuple(FIELDS[c] for c in cols)
        for f in needed:
            x = np.vstack((train, tests[f]))[:, cols]
            alarm = _alarm(x, names, config, TEP_INTERVAL_S)[WARMUP:]
            faulty = np.zeros(alarm.shape[0], dtype=np.bool_)
            if f:
                faulty[train.shape[0] - WARMUP + 160:] = True
            per_file[f].add(alarm, faulty)
    out: dict[str, Any] = {"subset_seed": SUBSET_SEED,
                           "subsets": [[FIELDS[c] for c in cols] for cols in chosen]}
    for h in halves:
        total = Counts()
        for f in (0, *faults[h]):
            c = per_file[f]
            total.tp, total.fp, total.fn, total.tn = (total.tp + c.tp, total.fp + c.fp,
                                                      total.fn + c.fn, total.tn + c.tn)
        out[h] = total.figures()
        out[h]["detection_rate_per_fault"] = {
            str(f): round(per_file[f].tp / max(per_file[f].tp + per_file[f].fn, 1), 3)
            for f in faults[h]}
        out[h]["far_d00_te"] = per_file[0].figures()["far"]
    return out


def sim_rig(config: DetectorConfig, seed: int, devices: int) -> dict[str, Any]:
    """Per-row figures of the simulated 1 Hz pump rig (score_accuracy.py --rig's runs)."""
    fleet = fleet_of(devices, 0.0, seed, rig=True)
    horizon = fleet.config.horizon_s
    counts, healthy = Counts(), Counts()
    for device in fleet.devices:
        block = device.next_sim_block(horizon)
        keep = np.flatnonzero(block.present)
        x = block.values[keep]
        faulty = np.zeros(keep.shape[0], dtype=np.bool_)
        if device.fault is not None:
            faulty = device.fault.severity(block.true_t[keep]) > 0.0
        alarm = _alarm(x, tuple(device.product.fields), config, 1.0)
        counts.add(alarm[WARMUP:], faulty[WARMUP:])
        if device.fault is None:
            healthy.add(alarm[WARMUP:], faulty[WARMUP:])
    out = counts.figures()
    out["far_healthy_runs"] = healthy.figures()["far"]
    out["seed"], out["devices"] = seed, devices
    return out


def hard_rig(config: DetectorConfig, seed: int, runs: int) -> dict[str, Any]:
    """Per-row figures of ``benchmarks/rig_hard.py``'s 8-sensor runs."""
    counts, healthy = Counts(), Counts()
    for index in range(runs):
        x, faulty = rig_hard.run(seed, index)
        alarm = _alarm(x, rig_hard.FIELDS, config, 1.0)
        counts.add(alarm[WARMUP:], faulty[WARMUP:])
        if not faulty.any():
            healthy.add(alarm[WARMUP:], faulty[WARMUP:])
    out = counts.figures()
    out["far_healthy_runs"] = healthy.figures()["far"]
    out["seed"], out["runs"] = seed, runs
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both proxies and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--half", choices=("tuning", "held_out", "both"), default="both")
    parser.add_argument("--subsets", type=int, default=SUBSETS)
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--tep-only", action="store_true")
    parser.add_argument("--sim-only", action="store_true")
    parser.add_argument("--hard-only", action="store_true")
    parser.add_argument("--config", type=Path, default=None,
                        help="detector config overrides (TOML/JSON, as forewarn score --config)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args(argv)
    from forewarn.score import load_detector_config

    config = load_detector_config(args.config)
    halves = ["tuning", "held_out"] if args.half == "both" else [args.half]
    started = time.process_time()
    report: dict[str, Any] = {"warmup": WARMUP}
    seeds = {"tuning": RIG_TUNING_SEED, "held_out": RIG_HELD_OUT_SEED}
    only = args.tep_only or args.sim_only or args.hard_only
    if args.tep_only or not only:
        report["tep8"] = tep(config, halves, args.subsets)
    if args.sim_only or not only:
        report["sim_rig"] = {h: sim_rig(config, seeds[h], args.devices) for h in halves}
    if args.hard_only or not only:
        report["hard_rig"] = {h: hard_rig(config, seeds[h], args.devices) for h in halves}
    report["cpu_s"] = round(time.process_time() - started, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    for proxy in ("tep8", "sim_rig", "hard_rig"):
        if proxy not in report:
            continue
        for h in halves:
            r = report[proxy][h]
            print(f"{proxy:<8} {h:<9} F1 {r['f1']:.3f} (every row {r['f1_alarm_every_row']}) "
                  f"P {r['precision']} R {r['recall']} FAR {r['far']}")
    print(f"CPU {report['cpu_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
