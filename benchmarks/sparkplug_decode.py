"""Decoding speed of Sparkplug B DDATA through a mapping (``format = "sparkplug"``), CPU only.

    .venv/bin/python benchmarks/sparkplug_decode.py [--messages 2000] [--json]

An edge node's device was born with five DOUBLE metrics; each DDATA carries them by alias only
(no names, no datatypes), ``rows`` readings per message, each metric with its own timestamp.
Measured: :class:`core.mapping.MappedDecoder` on each message (protobuf parse, alias and type
resolution from the birth, the native batch), as CPU time of this process: one reading of five
fields per message (the hard case) and 30 per message.
"""

from __future__ import annotations

import argparse
import json
import time

import pysparkplug as spb

from core.mapping import MappedDecoder, MappingConfig

FIELDS = ("compressor_current", "discharge_temp", "suction_pressure", "flow_temp", "power")
T0_MS = 1_700_000_000_000


def _metric(name: str | None, alias: int, value: float, ts: int | None = None) -> spb.Metric:
    return spb.Metric(timestamp=ts, name=name, datatype=spb.DataType.DOUBLE, value=value,
                      alias=alias)


def measure(rows: int, messages: int) -> dict[str, float]:
    """Values and readings per CPU second for DDATA of ``rows`` readings of five fields."""
    decoder = MappedDecoder([MappingConfig(name="plant", topic="spBv1.0/+tenant/#",
                                           format="sparkplug")])
    decoder("spBv1.0/acme/DBIRTH/edge-1/hp-1", spb.DBirth(timestamp=T0_MS, seq=0, metrics=tuple(
        _metric(f, i, 0.0) for i, f in enumerate(FIELDS, start=1))).encode(include_dtypes=True))
    payloads = [spb.DData(timestamp=T0_MS + k, seq=(k + 1) % 256, metrics=tuple(
        _metric(None, i, float(r + i), T0_MS + 1000 * (k * rows + r + 1))
        for r in range(rows) for i in range(1, len(FIELDS) + 1))).encode()
        for k in range(messages)]
    started = time.process_time()
    for payload in payloads:
        decoder("spBv1.0/acme/DDATA/edge-1/hp-1", payload)
    cpu = time.process_time() - started
    samples = messages * rows
    return {"rows_per_message": rows, "readings_per_cpu_s": round(samples / cpu),
            "values_per_cpu_s": round(samples * len(FIELDS) / cpu),
            "cpu_us_per_message": round(cpu / messages * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(rows, args.messages) for rows in (1, 30)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"sparkplug DDATA {r['rows_per_message']}x5 doubles by alias: "
              f"{r['readings_per_cpu_s']:,} readings/s, {r['values_per_cpu_s']:,} values/s "
              f"per CPU second ({r['cpu_us_per_message']} µs/message)")


if __name__ == "__main__":
    main()
