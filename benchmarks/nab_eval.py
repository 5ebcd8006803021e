"""NAB on fixed halves: ``python benchmarks/nab_eval.py [--data DIR] [--reference] [--json]``.

Streams every labelled file of ``shared/nab`` through :func:`forewarn.nab.score_series` (what
``forewarn nab`` runs: a fresh ``make_detector(DetectorConfig())`` per file, blocks of 64 rows
with their timestamps) and scores the results with :mod:`benchmarks.nab_scoring` (NAB's
standard, low-FP and low-FN profiles, one corpus-wide threshold per set).

**The halves.** The labelled files' relative paths (``realKnownCause/nyc_taxi.csv``...),
sorted as strings, are numbered from 0: *tuning* = even numbers, *held-out* = odd numbers.
Every constant chosen by looking at NAB figures is chosen on the tuning half; the held-out
half is only measured. The report gives the tuning half, the held-out half and all files,
each with its own threshold (as NAB chooses one per corpus).

``--reference`` scores :meth:`DetectorConfig.nab_reference` (the earlier single-series tuning,
chosen on all 35 files) beside the default, on the same halves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nab_scoring import FileLabels, load_labels, load_profiles, sweep
from core.detect import DetectorConfig
from forewarn.nab import _read, score_series

__all__ = ["halves", "main"]

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "nab"


def halves(names: list[str]) -> dict[str, list[str]]:
    """The fixed split: sorted relative paths, even index = tuning, odd = held-out."""
    ordered = sorted(names)
    return {"tuning": ordered[0::2], "held_out": ordered[1::2], "all": ordered}


def _scores(data: Path, names: list[str], config: DetectorConfig) -> dict[str, NDArray[np.float64]]:
    out: dict[str, NDArray[np.float64]] = {}
    for rel in names:
        _, values, times = _read(data / rel)
        out[rel] = score_series(values, times, config)
    return out


def main(argv: list[str] | None = None) -> int:
    """Score the halves and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=_SHARED / "data")
    parser.add_argument("--windows", type=Path, default=_SHARED / "labels" /
                        "combined_windows.json")
    parser.add_argument("--reference", action="store_true",
                        help="also score DetectorConfig.nab_reference()")
    parser.add_argument("--half", choices=("tuning", "held_out", "all"), default="all",
                        help="score only the files of this half (default: all, reported per half)")
    parser.add_argument("--config", type=Path, default=None,
                        help="detector config over the defaults (TOML/JSON, as forewarn score "
                        "--config): for tuning on --half tuning")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    labels = load_labels(args.data, args.windows)
    profiles = load_profiles(args.windows.resolve().parent.parent / "profiles.json")
    sets = halves(list(labels))
    run = sets[args.half]
    from forewarn.score import load_detector_config

    configs = {"default": load_detector_config(args.config)}
    if args.reference:
        configs["nab_reference"] = DetectorConfig.nab_reference()
    report: dict[str, dict[str, dict[str, object]]] = {}
    for cname, config in configs.items():
        started = time.process_time()
        scores = _scores(args.data, run, config)
        report[cname] = {}
        for sname, names in sets.items():
            if not set(names) <= set(run):
                continue
            subset: dict[str, FileLabels] = {n: labels[n] for n in names}
            report[cname][sname] = {"files": len(names)}
            for profile in profiles:
                r = sweep(subset, scores, profile)
                report[cname][sname][r.profile] = {
                    "score": round(r.normalised, 2), "threshold": round(r.threshold, 4),
                    "tp": r.tp, "fp": r.fp, "fn": r.fn}
        report[cname]["cpu_s"] = {"all": round(time.process_time() - started, 1)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'config':<14} {'half':<9} {'files':>5} {'standard':>9} {'low_FP':>7} {'low_FN':>7}"
          f" {'thr':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    for cname, per_set in report.items():
        for sname, row in per_set.items():
            if sname == "cpu_s":
                continue
            std: dict[str, object] = row["standard"]  # type: ignore[assignment]
            low_fp: dict[str, object] = row["reward_low_FP_rate"]  # type: ignore[assignment]
            low_fn: dict[str, object] = row["reward_low_FN_rate"]  # type: ignore[assignment]
            print(f"{cname:<14} {sname:<9} {row['files']:>5} {std['score']:>9} "
                  f"{low_fp['score']:>7} {low_fn['score']:>7} {std['threshold']:>7} "
                  f"{std['tp']:>4} {std['fp']:>4} {std['fn']:>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
