"""What one edge agent costs: CPU microseconds per sample and resident memory, at 1/10/100 Hz.

Runs ``forewarn edge run`` (4 fields; batches of 60 samples or 10 s; zlib above 1 KiB; disk
queue at each ``[queue] durability``: "crash" = SQLite synchronous=NORMAL, "power-cut" = FULL)
against a real mosquitto for ``--seconds`` per rate, and reads
the agent's CPU time (all threads, /proc/<pid>/task/*/schedstat) over the measured window, after
start-up. The figure includes everything the agent does in that window: idle wake-ups, status
messages, SQLite commits and MQTT, so at 1 Hz it is dominated by fixed costs. ``B/sample`` is
what the agent handed to ``write()`` per sample (journal, SQLite, WAL and MQTT socket together).

The price of "power-cut" shows less in CPU than in waiting for the disk, so the same run also
times the queue alone (``queue_commit_us``: the median of ``--commits`` single-record put+ack
transactions of a 1 KiB batch, each one commit, side by side for both settings, on this
machine's disk).

The default source is a trivial Python callable (:func:`reading`), so the figures are the
agent's; ``--source sim`` uses the firmware_sim heat pump instead, whose simulation (numba) then
dominates CPU and memory.

    .venv/bin/python benchmarks/edge_cost.py            # 1, 10, 100 samples/s, 20 s each
    .venv/bin/python benchmarks/edge_cost.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_broker import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("compressor_current", "discharge_temp", "suction_pressure", "outdoor_temp")


def reading() -> dict[str, float]:
    """The callable source: four slowly varying readings."""
    phase = time.time() / 600.0
    return {name: 10.0 * (i + 1) + math.sin(phase + i) for i, name in enumerate(FIELDS)}


def _cpu_s(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` (schedstat: nanoseconds, not 10 ms ticks)."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total_ns += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total_ns / 1e9


def _memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _accepted(queue: Path) -> int:
    """Samples the running agent accepted: folded into the counter, or still in its journal."""
    try:
        with sqlite3.connect(f"file:{queue}?mode=ro", uri=True, timeout=1.0) as db:
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        generation, carried = counters["staged_generation"], counters["staged_carried"]
        journal = queue.with_name(f"{queue.name}.staged-{generation}")
        lines = journal.read_bytes().count(b"\n") if journal.exists() else carried
        return int(counters["accepted_samples"]) + lines - int(carried)
    except (sqlite3.Error, KeyError, OSError):
        return 0


def _written_bytes(pid: int) -> int:
    """Bytes the process handed to write() so far (files and sockets: /proc/<pid>/io wchar)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def queue_commit_us(durability: str, work: Path, commits: int) -> float:
    """Median microseconds of one put + ack (two commits) of a 1 KiB record."""
    from edge.queue import DiskQueue

    queue = DiskQueue(work / f"commit-{durability}.sqlite",
                      synchronous="FULL" if durability == "power-cut" else "NORMAL")
    payload = os.urandom(1024)
    times = []
    try:
        for _ in range(commits):
            started = time.perf_counter()
            record = queue.put("forewarn/v1/t/d/telemetry", payload, n_samples=60)
            assert record is not None
            queue.ack(record)
            times.append(time.perf_counter() - started)
    finally:
        queue.close()
    times.sort()
    return round(times[len(times) // 2] * 1e6, 1)


def measure(rate_hz: float, seconds: float, port: int, work: Path,
            source: str = "callable", durability: str = "crash") -> dict[str, float | str]:
    """Run one agent at ``rate_hz`` and measure it for ``seconds`` after start-up."""
    source_lines = (f'kind = "callable"\ncallable = "edge_cost:reading"\nfields = {list(FIELDS)}'
                    .replace("'", '"') if source == "callable" else 'kind = "sim"')
    queue = work / f"q-{rate_hz:g}-{durability}.sqlite"
    config = work / f"edge-{rate_hz:g}-{durability}.toml"
    config.write_text(f"""
device_id = "hp-cost"
[broker]
port = {port}
[batching]
max_samples = 60
max_age_s = 10.0
[queue]
path = "{queue}"
durability = "{durability}"
[source]
sample_period_s = {1.0 / rate_hz}
{source_lines}
""")
    agent = subprocess.Popen(
        [sys.executable, "-m", "forewarn.commands.edge", "run", "--config", str(config)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"},
        stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _accepted(queue) < 1:  # start-up (imports, connect) is not what we measure
            if time.monotonic() > deadline or agent.poll() is not None:
                raise RuntimeError("the agent did not start")
            time.sleep(0.05)
        cpu0, samples0, t0 = _cpu_s(agent.pid), _accepted(queue), time.monotonic()
        written0 = _written_bytes(agent.pid)
        time.sleep(seconds)  # the measured window
        cpu1, samples1, t1 = _cpu_s(agent.pid), _accepted(queue), time.monotonic()
        written1 = _written_bytes(agent.pid)
        memory = _memory_kib(agent.pid)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    samples = samples1 - samples0
    return {
        "source": source,
        "durability": durability,
        "rate_hz": rate_hz,
        "seconds": round(t1 - t0, 1),
        "samples": samples,
        "cpu_us_per_sample": round((cpu1 - cpu0) * 1e6 / max(samples, 1), 1),
        "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "written_bytes_per_sample": round((written1 - written0) / max(samples, 1)),
        "rss_mib": round(memory["VmRSS"] / 1024, 1),
        "peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
    }


def main() -> int:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per rate")
    parser.add_argument("--source", choices=["callable", "sim"], default="callable")
    parser.add_argument("--durability", nargs="+", choices=["crash", "power-cut"],
                        default=["crash", "power-cut"], help="[queue] durability settings to "
                        "measure side by side (default both)")
    parser.add_argument("--commits", type=int, default=300,
                        help="put+ack transactions timed per durability for queue_commit_us")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fw-cost-") as tmp, Mosquitto() as broker:
        commit_us = {d: queue_commit_us(d, Path(tmp), args.commits) for d in args.durability}
        rows = [{**measure(rate, args.seconds, broker.port, Path(tmp), args.source, durability),
                 "queue_commit_us": commit_us[durability]}
                for rate in args.rates for durability in args.durability]
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'rate/s':>7} {'durability':>10} {'samples':>8} {'µs/sample':>10} {'cpu %':>6}"
              f" {'B/sample':>9} {'RSS MiB':>8} {'peak MiB':>9} {'commit µs':>10}")
        for row in rows:
            print(f"{row['rate_hz']:>7g} {row['durability']:>10} {row['samples']:>8}"
                  f" {row['cpu_us_per_sample']:>10} {row['cpu_percent']:>6}"
                  f" {row['written_bytes_per_sample']:>9} {row['rss_mib']:>8}"
                  f" {row['peak_rss_mib']:>9} {row['queue_commit_us']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
