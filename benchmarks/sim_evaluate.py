"""Speed and detection figures of ``forewarn sim evaluate`` over several seeds.

Usage::

    .venv/bin/python benchmarks/sim_evaluate.py --devices 1000 --days 30 --seeds 1 2 3 4 5

Prints one line per seed (overall figures and speed), then the per-fault-kind table summed over
the seeds, and writes every report to ``--json`` if given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from forewarn.sim import evaluate


def _row(r: dict[str, Any]) -> str:
    return (f"seed {r['seed']}: faults {r['faults']}, causing calls {r['faults_causing_calls']}, "
            f"notified before call {r['notified_before_call']} "
            f"({r['pct_notified_before_call']} %), median lead {r['median_lead_time_h']} h, "
            f"slow median lead {r['by_course'].get('slow', {}).get('median_lead_time_h')} h, "
            f"false cases {r['false_cases']} ({r['false_cases_per_1000_device_days']} per 1000 "
            f"device-days), {r['samples']} samples in {r['run_time_s']} s "
            f"({r['samples_per_s']} samples/s)")


def main() -> None:
    """Run the seeds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    reports = []
    for seed in args.seeds:
        report = evaluate(args.devices, args.days, seed, workers=args.workers)
        reports.append(report)
        print(_row(report), flush=True)
    kinds = sorted({k for r in reports for k in r["by_fault"]})
    print(f"\n{'fault kind':<18} {'faults':>6} {'calls':>6} {'first':>6} {'%':>6} "
          f"{'lead h (median of seeds)':>25} {'late':>5} {'missed':>6}")
    for kind in kinds:
        rows = [r["by_fault"][kind] for r in reports if kind in r["by_fault"]]
        calls = sum(x["faults_causing_calls"] for x in rows)
        first = sum(x["notified_before_call"] for x in rows)
        leads = [x["median_lead_time_h"] for x in rows if x["median_lead_time_h"] is not None]
        print(f"{kind:<18} {sum(x['faults'] for x in rows):>6} {calls:>6} {first:>6} "
              f"{(100.0 * first / calls if calls else float('nan')):>6.1f} "
              f"{(float(np.median(leads)) if leads else float('nan')):>25.1f} "
              f"{sum(x['detected_after_call'] for x in rows):>5} "
              f"{sum(x['missed'] for x in rows):>6}")
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
