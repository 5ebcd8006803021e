"""Shards of a fleet streamed in separate processes, and their progress.

Devices are independent (their detector state and rule state are their own), so each worker
process streams every n-th device through its own pipelines; the parent reads the workers'
progress from a shared array. The peer detector is the exception: it compares a device with the
peers of its own shard only (as a NATS partition's worker does), so its figures are measured
with one worker.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from firmware_sim.fleet import Fleet
from forewarn.sim.incidents import SimIncident
from forewarn.sim.match import SimCase
from forewarn.sim.options import EvalOptions, TimelineTrace
from forewarn.sim.peer_report import PeerFlag
from forewarn.sim.stream import stream_fleet

__all__ = ["ShardResult", "run_shard", "run_shards"]

#: the share of simulated time each worker process has streamed (inherited through fork)
_SHARD_DONE: Any = None


def _shard_done(shard: int, fraction: float) -> None:
    """A worker's progress, into the array its parent reads."""
    if _SHARD_DONE is not None:
        _SHARD_DONE[shard] = fraction


@dataclass(slots=True)
class ShardResult:
    """What one shard's stream produced."""

    cases: list[SimCase]
    samples: int
    batches: int
    traces: dict[str, TimelineTrace]
    #: fleet incidents (a shard sees only its own devices: run one shard to judge them)
    incidents: list[SimIncident]
    peer_flags: list[PeerFlag]


def run_shard(options: EvalOptions, shard: int, shards: int, traced: tuple[str, ...],
              progress: Callable[[float], None] | None = None) -> ShardResult:
    """Stream every ``shards``-th device, starting at ``shard``: devices are independent (their
    detector state and rule state are their own), so shards can run on separate cores."""
    fleet = Fleet(options.fleet_config())
    fleet.devices = fleet.devices[shard::shards]
    traces = {d.device_id: TimelineTrace(d.product.fields)
              for d in fleet.devices if d.device_id in traced}
    report = progress or functools.partial(_shard_done, shard)
    cases, samples, batches, incidents, flags = stream_fleet(options, fleet, traces, report)
    return ShardResult(cases, samples, batches, traces, incidents, flags)


def run_shards(options: EvalOptions, traced: tuple[str, ...],
               progress: Callable[[float], None]) -> list[ShardResult]:
    """Stream the whole fleet in ``options.workers`` processes (one shard: in this one)."""
    global _SHARD_DONE
    shards = max(1, min(options.workers, options.devices))
    if shards == 1:
        return [run_shard(options, 0, 1, traced, progress)]
    context = multiprocessing.get_context("fork")
    _SHARD_DONE = context.Array("d", shards, lock=False)
    try:
        with ProcessPoolExecutor(max_workers=shards, mp_context=context) as pool:
            futures = [pool.submit(run_shard, options, shard, shards, traced)
                       for shard in range(shards)]
            while True:
                done, running = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                if not running or any(f.exception() is not None for f in done):
                    break
                progress(sum(_SHARD_DONE) / shards)
            results = [f.result() for f in futures]
    finally:
        _SHARD_DONE = None
    progress(1.0)
    return results
