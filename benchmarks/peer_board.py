"""The memory of a process's peer board and the CPU of judging over it, at 100 k and 1 M devices:
``python benchmarks/peer_board.py [--devices 100000,1000000] [--partitions 32] [--local 1]
[--buckets 10] [--before DIR] [--json]``.

A process of the scale-out engine runs ``--local`` of ``--partitions`` partitions; every
partition's peer detector publishes its members of each hourly bucket and judges its own over
every partition's (:mod:`core.detect.peer_share`). Here one process does that for ``--buckets``
buckets in step: the other partitions' summaries go through their byte form (split to fit a
key-value value, as :mod:`core.nats.peers` puts them) into the board, then the local
partitions' :class:`~core.detect.peer.Peer` detectors make the bucket due, publish, gather and
judge. The fleet is shaped like the simulator's: 3 products × 2 models × 4 regions, five fields
a device (120 peer groups), cohorts by production batch (7) and firmware (2).

Each implementation runs in a process of its own (``PYTHONPATH`` its checkout: this one, and
``--before DIR``, e.g. ``git archive main core edge | tar -x -C DIR``), side by side in one run:

- ``board_held_mb``: the most the board held (its summaries' arrays), after any step;
- ``traced_peak_mb``: tracemalloc's peak over the buckets, above what was allocated before
  them (the board, the byte forms in transit, the judging's arrays; the detectors' own state
  was allocated before);
- ``rss_peak_mb`` / ``rss_base_mb``: the process's peak resident memory and before the buckets;
- ``judge_cpu_ms``: CPU per bucket and local partition to make the bucket due, publish, gather
  and judge (median over the buckets); ``wire_cpu_ms``: CPU per bucket to put the other
  partitions' summaries in their byte form (split to fit a value) and read them back into the
  board, all of them;
- ``wire_bytes_partition`` and ``wire_keys_partition``: one partition's summary of a bucket in
  the key-value bucket (bytes, keys).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["main", "measure"]

_PRODUCTS, _MODELS, _REGIONS, _BATCHES, _FIRMWARE = 3, 2, 4, 7, 2


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _labels(devices: int, fields: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Each member's (device × field) group and cohort index, and the labels of them."""
    kind = rng.integers(0, _PRODUCTS * _MODELS * _REGIONS, devices)
    cohort = rng.integers(0, _BATCHES * _FIRMWARE, devices)
    group = (kind[:, None] * fields + np.arange(fields)[None, :]).ravel()
    return (group, np.repeat(cohort, fields),
            [f"acme/g{g}" for g in range(_PRODUCTS * _MODELS * _REGIONS * fields)],
            [f"acme/c{c}" for c in range(_BATCHES * _FIRMWARE)])


def measure(devices: int, partitions: int, local: int, buckets: int, fields: int,
            seed: int) -> dict[str, Any]:
    """One implementation (whatever ``core`` imports) through ``buckets`` buckets."""
    import core.nats.peers as transport
    from core.detect.peer import Peer, label_id
    from core.detect.peer_share import PeerBoard, PeerSummary

    rng = np.random.default_rng(seed)
    group, cohort, group_names, cohort_names = _labels(devices, fields, rng)
    group_ids = np.array([label_id(n) for n in group_names], dtype=np.int64)
    cohort_ids = np.array([label_id(n) for n in cohort_names], dtype=np.int64)
    owner = rng.integers(0, partitions, group.size)
    mine = [np.flatnonzero(owner == p) for p in range(partitions)]
    by_bytes = hasattr(transport, "PART_BYTES")
    part = transport.PART_BYTES if by_bytes else transport.PART_MEMBERS  # type: ignore[attr-defined]
    fetched: list[int] = []
    kwargs: dict[str, Any] = {}
    if "fetch" in inspect.signature(PeerBoard).parameters:
        kwargs["fetch"] = fetched.append  # the KV bucket: never needed in step
    board = PeerBoard(partitions, wait_s=float("inf"), **kwargs)
    dets = []
    for p in range(local):
        det = Peer(capacity=mine[p].size, bucket_s=3600.0, lag_s=0.0, warmup=2, min_members=5)
        det.assign(np.arange(mine[p].size), [group_names[g] for g in group[mine[p]]],
                   [cohort_names[c] for c in cohort[mine[p]]])
        det.share = board.share_for(p)
        dets.append(det)
    level = rng.normal(40.0, 2.0, group.size)

    def held() -> int:
        return sum(int(getattr(s, k).nbytes) for e in board._buckets.values()
                   for s in e.summaries.values() for k in type(s).COLUMNS)

    def remote(h: int) -> tuple[float, int, int]:
        """The other partitions' summaries of bucket ``h`` into the board, through bytes."""
        cpu = 0.0
        wire = keys = 0
        for p in range(local, partitions):
            rows = mine[p]
            offset = rng.normal(0.0, 1.0, rows.size)
            reference = offset.copy()
            moved = rng.random(rows.size) < 0.01
            reference[moved] += 0.5
            summary = PeerSummary.of(group=group_ids[group[rows]],
                                     cohort=cohort_ids[cohort[rows]],
                                     val=level[rows] + rng.normal(0.0, 0.3, rows.size),
                                     offset=offset, reference=reference,
                                     warm=rng.random(rows.size) < 0.95)
            start = time.process_time()
            values = [piece.to_bytes() for piece in summary.split(part)]
            del summary
            pieces = [PeerSummary.from_bytes(v) for v in values]
            got = pieces[0] if len(pieces) == 1 else PeerSummary.merge(pieces)
            board.receive(p, h, got)
            cpu += time.process_time() - start
            wire, keys = sum(len(v) for v in values), len(values)
            del values, pieces, got
        return cpu, wire, keys

    def step(h: int) -> list[float]:
        """Bucket ``h`` made due by a sample an hour later: every local partition judges it."""
        cpus = []
        t = np.array([(h + 1) * 3600.0 + 1800.0])
        for p, det in enumerate(dets):
            x = (level[mine[p]] + rng.normal(0.0, 0.3, mine[p].size))[None, :]
            start = time.process_time()
            det.update(np.arange(mine[p].size), x, t)
            cpus.append(time.process_time() - start)
            det.take_judged()  # as the pipeline does
        return cpus

    # the first bucket (the local partitions have no members in it yet): numba compiles;
    # not measured
    remote(0)
    step(0)
    base = _rss_mb()
    tracemalloc.start()
    traced_base = tracemalloc.get_traced_memory()[0]
    judge, receive, most = [], [], held()
    wire = keys = 0
    for h in range(1, buckets + 1):
        cpu, wire, keys = remote(h)
        receive.append(cpu)
        most = max(most, held())
        judge.extend(step(h))
        most = max(most, held())
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if any(d._pending for d in dets) or fetched:
        raise RuntimeError(f"not in step: waiting {[len(d._pending) for d in dets]}, "
                           f"fetched {fetched}")
    mb = 1024 * 1024
    return {
        "devices": devices, "members": int(group.size), "partitions": partitions,
        "local": local, "buckets": buckets,
        "board_held_mb": round(most / mb, 1),
        "board_buckets_held_after": len({b for b, e in board._buckets.items() if e.summaries}),
        "traced_peak_mb": round((traced_peak - traced_base) / mb, 1),
        "rss_base_mb": round(base, 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "judge_cpu_ms": round(1000 * statistics.median(judge), 1),
        "wire_cpu_ms": round(1000 * statistics.median(receive), 1),
        "wire_bytes_partition": wire, "wire_keys_partition": keys,
    }


def _run(root: Path, args: argparse.Namespace, devices: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root),
           "NUMBA_CACHE_DIR": str(root / ".numba-cache-bench")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--devices", str(devices),
           "--partitions", str(args.partitions), "--local", str(args.local), "--buckets",
           str(args.buckets), "--fields", str(args.fields), "--seed", str(args.seed)]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    """Measure this checkout (and ``--before``) and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="100000,1000000")
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--local", type=int, default=1)
    parser.add_argument("--buckets", type=int, default=10)
    parser.add_argument("--fields", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", type=Path, help="a checkout of the code before")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(d) for d in args.devices.split(",")]
    if args.child:
        print(json.dumps(measure(sizes[0], args.partitions, args.local, args.buckets,
                                 args.fields, args.seed)))
        return
    impls = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    runs = [{"impl": name, **_run(root, args, n)} for n in sizes for name, root in impls.items()]
    if args.json:
        print(json.dumps({"runs": runs}, indent=2))
        return
    keys = [k for k in runs[0] if k not in ("impl", "partitions", "local", "buckets")]
    print(" | ".join(["impl", *keys]))
    for run in runs:
        print(" | ".join(str(run[k]) for k in ["impl", *keys]))


if __name__ == "__main__":
    main()
