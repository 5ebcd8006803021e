"""Write throughput of the time-series stores, side by side in one run (medians of repeats).

    .venv/bin/python benchmarks/store_write.py [--json] [--repeats 5] [--outage-s 20]

Measures, on the same scored batches (8 sensor fields, 1,000 samples per batch):

- ``lineproto_build``: line protocol built from the arrays (:mod:`core.store.lineproto`);
- ``point_build``: the same lines through influxdb-client's per-``Point`` objects;
- ``influx_arrays_http``: :class:`InfluxStore` writing to a local VictoriaMetrics over
  ``/api/v2/write`` (build + HTTP, synchronous);
- ``influx_points_http``: influxdb-client's write API fed ``Point`` objects, same server;
- ``embedded``: :class:`EmbeddedStore` into a SQLite file;
- with ``--outage-s`` > 0, a stream through :class:`BufferedStore` while VictoriaMetrics is down
  that long, checked afterwards point by point count.

A *value* is one field of one sample (what VictoriaMetrics counts as a sample); a *line* is one
line-protocol point (one sample of one measurement, 8 values here). Each batch writes values and
scores, so 2 lines and 16 values per sample. ``per_cpu_s`` divides by the CPU seconds this process
spent, i.e. the rate per core of the writer (the server runs on the same two cores).
"""

# influxdb-client's Point has no type hints
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers for VictoriaMetrics

from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from core.events import ScoredBatch
from core.store.buffered import BufferedStore
from core.store.config import InfluxConfig
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore
from core.store.lineproto import encode_batch
from tests.servers.victoria import VictoriaMetrics

FIELDS = tuple(f"sensor_{i}" for i in range(8))
T0 = 1_699_999_980.0


def make_batches(tenant: str, n_batches: int, per_batch: int, seed: int = 1) -> list[ScoredBatch]:
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(n_batches):
        t = (T0 + (b * per_batch + np.arange(per_batch)) * 1.0).astype(np.float64)
        values = rng.normal(50.0, 5.0, size=(per_batch, len(FIELDS))).round(3)
        scores = rng.random((per_batch, len(FIELDS))).round(4)
        batches.append(ScoredBatch(tenant, f"hp-{b % 10}", "heat_pump", FIELDS, t, values,
                                   scores))
    return batches


def point_objects(batches: list[ScoredBatch]) -> list[Point]:
    points = []
    for batch in batches:
        for measurement, matrix in (("telemetry", batch.values), ("anomaly", batch.scores)):
            for i in range(batch.n_samples):
                point = Point(measurement)
                point.tag("tenant", batch.tenant)
                point.tag("device", batch.device_id)
                point.tag("product", batch.product)
                for j, name in enumerate(batch.fields):
                    point.field(name, float(matrix[i, j]))
                point.time(round(float(batch.t[i]) * 1000), WritePrecision.MS)
                points.append(point)
    return points


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of ``run``."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def rates(name: str, lines: int, values: int, wall: float, cpu: float) -> dict[str, Any]:
    return {
        "name": name, "lines": lines, "values": values,
        "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
        "lines_per_s": round(lines / wall), "values_per_s": round(values / wall),
        "values_per_cpu_s": round(values / cpu) if cpu > 0 else None,
    }


def run(repeats: int, outage_s: float, workdir: Path) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    batches = make_batches("bench", 50, 1000)
    n_samples = sum(b.n_samples for b in batches)
    lines, values = 2 * n_samples, 2 * n_samples * len(FIELDS)

    wall, cpu = timed(lambda: [encode_batch(b) for b in batches], repeats)
    results.append(rates("lineproto_build", lines, values, wall, cpu))

    few = batches[:5]  # the per-Point path is slow: a tenth of the data
    few_lines = 2 * sum(b.n_samples for b in few)
    few_values = few_lines * len(FIELDS)
    wall, cpu = timed(lambda: [p.to_line_protocol() for p in point_objects(few)], repeats)
    results.append(rates("point_build", few_lines, few_values, wall, cpu))

    with VictoriaMetrics(workdir / "victoria") as vm:
        config = InfluxConfig(url=vm.url, write_explanations=False)
        with InfluxStore(config) as store:
            store.write_many(make_batches("warmup", 2, 1000))
            # fresh series per repeat, made outside the timing
            sets = iter([make_batches(f"arrays{r}", 50, 1000) for r in range(repeats)])
            wall, cpu = timed(lambda: store.write_many(next(sets)), repeats)
            results.append(rates("influx_arrays_http", lines, values, wall, cpu))
        landed = vm.count_values('{tenant=~"arrays.*"}')
        expected = repeats * values
        results[-1]["landed_values"] = landed
        results[-1]["all_landed"] = landed == expected

        from influxdb_client.client.influxdb_client import InfluxDBClient

        with InfluxDBClient(url=vm.url, org="forewarn") as client:
            write_api = client.write_api(write_options=SYNCHRONOUS)
            point_sets = iter([point_objects(make_batches(f"points{r}", 5, 1000))
                               for r in range(repeats)])
            wall, cpu = timed(
                lambda: write_api.write("forewarn", record=next(point_sets),
                                        write_precision=WritePrecision.MS),
                repeats,
            )
            write_api.close()
        results.append(rates("influx_points_http", few_lines, few_values, wall, cpu))

        embedded_sets = iter([make_batches(f"embedded{r}", 50, 1000) for r in range(repeats)])
        with EmbeddedStore(workdir / "embedded.sqlite3") as embedded:
            wall, cpu = timed(lambda: embedded.write_many(next(embedded_sets)), repeats)
        results.append(rates("embedded", lines, values, wall, cpu))

        outage = outage_run(vm, workdir, outage_s) if outage_s > 0 else None
    return {
        "batch": {"fields": len(FIELDS), "samples_per_batch": 1000, "batches": 50},
        "repeats": repeats,
        "results": results,
        "outage": outage,
    }


def outage_run(vm: VictoriaMetrics, workdir: Path, outage_s: float) -> dict[str, Any]:
    """Stream 10-sample batches every 20 ms; stop the server for ``outage_s``; count what landed."""
    config = InfluxConfig(url=vm.url, retries=0, timeout_s=2.0, write_explanations=False)
    store = BufferedStore(InfluxStore(config), workdir / "spool", base_delay_s=0.2,
                          max_delay_s=2.0)
    sent = 0
    caught_up: float | None = None

    def stream(seconds: float) -> None:
        nonlocal sent, caught_up
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = (T0 + 1e6 + sent * 10 + np.arange(10)).astype(np.float64)
            values = (sent * 100 + np.arange(80).reshape(10, 8)).astype(np.float64)
            store.write(ScoredBatch("outage", "hp-1", "heat_pump", FIELDS, t, values,
                                    np.zeros_like(values)))
            sent += 1
            if caught_up is None and vm.running and not store.stats()["pending_batches"]:
                caught_up = time.monotonic()
            time.sleep(0.02)

    stream(2.0)
    vm.stop()
    caught_up = None
    stream(outage_s)
    during = store.stats()
    vm.start()
    restarted = time.monotonic()
    stream(2.0)
    drained = store.flush(timeout_s=60.0)
    catch_up_s = (caught_up or time.monotonic()) - restarted
    stats = store.stats()
    store.close()
    landed = vm.count_values('{tenant="outage",__name__="telemetry_sensor_0"}')
    return {
        "outage_s": outage_s, "batches_sent": sent, "samples_sent": sent * 10,
        "samples_landed_per_field": landed, "lost": sent * 10 - landed,
        "spooled_during_outage": during["pending_batches"], "drained": drained,
        "seconds_from_restart_to_drained": round(catch_up_s, 2), "stats": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--outage-s", type=float, default=20.0,
                        help="seconds VictoriaMetrics is down in the outage run (0: skip it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="forewarn-bench-") as tmp:
        report = run(args.repeats, args.outage_s, Path(tmp))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'path':<22}{'lines/s':>12}{'values/s':>13}{'values/CPU-s':>15}{'wall s':>9}")
    for row in report["results"]:
        per_cpu = row["values_per_cpu_s"] or 0
        print(f"{row['name']:<22}{row['lines_per_s']:>12,}{row['values_per_s']:>13,}"
              f"{per_cpu:>15,}{row['wall_s']:>9.3f}")
    arrays = next(r for r in report["results"] if r["name"] == "influx_arrays_http")
    print(f"all values landed in VictoriaMetrics: {arrays['all_landed']}")
    if report["outage"]:
        o = report["outage"]
        print(f"outage {o['outage_s']} s: sent {o['samples_sent']} samples, landed "
              f"{o['samples_landed_per_field']} per field, lost {o['lost']}, "
              f"spooled {o['spooled_during_outage']} batches, spool empty "
              f"{o['seconds_from_restart_to_drained']} s after the restart")


if __name__ == "__main__":
    main()
