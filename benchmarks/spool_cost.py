"""What the store's outage spool costs: microseconds to append one batch, and to replay one.

Appends ``--batches`` scored batches (one device, 4 fields, ``--samples`` samples each) one at a
time, as :class:`~core.store.buffered.BufferedStore` does with single writes while the store is
down (``--per-commit N``: N appends in one transaction, as it does with ``write_many``; the old
spool has no transactions and ignores it), then replays
them ``--replay`` at a time (peek + pop) until the spool is empty, and reports the median of
``--rounds`` rounds, in a fresh temporary directory each round (this machine's disk).

``--module FILE`` measures the ``Spool`` of another file instead: the segment-file spool this one
replaced is ``git show 7762c2a:core/store/spool.py > /tmp/old_spool.py``, so both run side by
side with the same batches:

    .venv/bin/python benchmarks/spool_cost.py
    .venv/bin/python benchmarks/spool_cost.py --module /tmp/old_spool.py
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.events import ScoredBatch


def _module(path: str | None) -> ModuleType:
    if path is None:
        import core.store.spool

        return core.store.spool
    spec = importlib.util.spec_from_file_location("spool_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _batches(n: int, samples: int) -> list[ScoredBatch]:
    rng = np.random.default_rng(1)
    return [ScoredBatch("acme", "hp-1", "heat_pump", ("a", "b", "c", "d"),
                        np.arange(samples, dtype=np.float64) + i * samples,
                        rng.normal(size=(samples, 4)), rng.random((samples, 4)))
            for i in range(n)]


def _round(spool_class: Any, batches: list[ScoredBatch], replay: int,
           per_commit: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        spool = spool_class(Path(tmp), max_bytes=1 << 30)
        together = getattr(spool, "transaction", contextlib.nullcontext)
        started = time.perf_counter()
        for first in range(0, len(batches), per_commit):
            with together():
                for batch in batches[first:first + per_commit]:
                    assert spool.append(batch)
        appended = time.perf_counter()
        replayed = 0
        while len(spool):
            replayed += len(spool.peek(replay))
            spool.pop(replay)
        done = time.perf_counter()
        spool.close()
    assert replayed == len(batches)
    n = len(batches)
    return (appended - started) / n * 1e6, (done - appended) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default=None, help="a file whose Spool to measure")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=60, help="samples per batch")
    parser.add_argument("--replay", type=int, default=256, help="batches per replay step")
    parser.add_argument("--per-commit", type=int, default=1, help="appends per transaction")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    module = _module(args.module)
    batches = _batches(args.batches, args.samples)
    rounds = [_round(module.Spool, batches, args.replay, args.per_commit)
              for _ in range(args.rounds)]
    report = {
        "spool": args.module or "core/store/spool.py",
        "batches": args.batches, "samples_per_batch": args.samples,
        "per_commit": args.per_commit,
        "record_bytes": len(module.encode_record(batches[0])),
        "append_us_per_batch": round(statistics.median(r[0] for r in rounds), 1),
        "replay_us_per_batch": round(statistics.median(r[1] for r in rounds), 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['spool']}: append {report['append_us_per_batch']} µs/batch, replay "
              f"{report['replay_us_per_batch']} µs/batch ({args.batches} batches of "
              f"{args.samples} samples, {report['record_bytes']} B each, {args.per_commit} per "
              f"commit; median of "
              f"{args.rounds} rounds)")


if __name__ == "__main__":
    main()
