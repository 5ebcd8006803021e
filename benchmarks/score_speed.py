"""How fast ``forewarn score`` backtests a file: 1 million rows × 8 fields (CSV, ISO times).

The file is made here (a shared load drives 8 related fields, with noise and 0.1 % missing
values), written to a temporary CSV, then read, scored (the service's detector and rules)
and written back as the scored CSV, as ``forewarn score`` does. Prints seconds per stage and
rows/s over all of it; ``--json`` prints one JSON object instead. The machine is shared: the
CPU time of the process is printed beside the wall time.

    .venv/bin/python benchmarks/score_speed.py [--rows 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]

from forewarn.score import ReadOptions, ScoreOptions, score_telemetry, write_csv
from forewarn.score.read import read_telemetry


def make_file(path: Path, rows: int, fields: int = 8, seed: int = 0) -> None:
    """A CSV of ``rows`` one-second samples of ``fields`` related sensors."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.int64) * 1_000_000_000 + 1_767_225_600 * 1_000_000_000
    load = np.cumsum(rng.normal(0.0, 0.02, rows))
    load = np.sin(np.arange(rows) / 3000.0) + 0.3 * (load - np.mean(load)) / (np.std(load) + 1)
    columns = {"time": pa.array(t.astype("datetime64[ns]"))}
    for j in range(fields):
        x = (1.0 + j) * load + 0.2 * j * load**2 + rng.normal(0.0, 0.05, rows)
        x[rng.random(rows) < 0.001] = np.nan
        columns[f"sensor_{j}"] = pa.array(x)
    pa_csv.write_csv(pa.table(columns), path)


def main() -> None:
    """Make the file, time each stage, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp, "rig.csv"), Path(tmp, "scored.csv")
        make_file(src, args.rows)
        # first run compiles the kernels (numba cache): not what a user waits for twice
        warm = read_telemetry(src, ReadOptions())
        score_telemetry(warm, ScoreOptions(warmup="3600"))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        telemetry = read_telemetry(src, ReadOptions())
        wall1 = time.perf_counter()
        scored = score_telemetry(telemetry, ScoreOptions(warmup="3600"))
        wall2 = time.perf_counter()
        write_csv(scored, out)
        wall3, cpu3 = time.perf_counter(), time.process_time()
    total = wall3 - wall0
    figures = {
        "rows": args.rows, "fields": len(telemetry.fields),
        "read_s": round(wall1 - wall0, 3), "score_s": round(wall2 - wall1, 3),
        "write_s": round(wall3 - wall2, 3), "total_s": round(total, 3),
        "cpu_s": round(cpu3 - cpu0, 3), "rows_per_s": round(args.rows / total),
        "alarm_rows": int(sum(int(r.alarm.sum()) for r in scored.results)),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{figures['rows']:,} rows × {figures['fields']} fields: read {figures['read_s']} s, "
          f"score {figures['score_s']} s, write {figures['write_s']} s; total "
          f"{figures['total_s']} s wall ({figures['cpu_s']} s CPU), "
          f"{figures['rows_per_s']:,} rows/s; {figures['alarm_rows']} alarm rows")


if __name__ == "__main__":
    main()
