"""Simulated time (``forewarn fleet --hours H --speed S``): the demo's fleet lives ``H`` hours,
``S`` times faster than real time, then ends once every batch is acknowledged (QoS 1)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.fleet import Fleet
from forewarn.edge import AgentRun, BatchingSection, BrokerSection
from forewarn.fleet.agents import agent_runs, open_devices, wait_connected

__all__ = ["FleetProgress", "FleetReport", "drive_fleet"]

#: wall seconds between two publishing steps in simulated time (at most: a step is at least
#: one sample period)
_STEP_WALL_S = 0.25


@dataclass(frozen=True, slots=True)
class FleetProgress:
    """Where a simulated-time run stands (handed to the progress callback)."""

    simulated_s: float
    horizon_s: float
    queued_records: int
    acked_records: int
    connected: int
    devices: int
    #: True once all is generated and the run waits for the last acknowledgements
    draining: bool = False


@dataclass(frozen=True, slots=True)
class FleetReport:
    """What a run did: per device, and whether every record was acknowledged."""

    runs: list[AgentRun]
    simulated_s: float
    wall_s: float

    @property
    def queued_records(self) -> int:
        """Records still in the devices' queues (not acknowledged by the broker)."""
        return sum(run.queue_depth for run in self.runs)


async def drive_fleet(
    fleet: Fleet,
    broker: BrokerSection,
    queue_dir: Path,
    stop: asyncio.Event,
    *,
    speed: float,
    passwords: Mapping[str, str | None] | None = None,
    first_index: int = 0,
    batch_samples: int = 30,
    status_interval_s: float = 30.0,
    connect_timeout_s: float = 30.0,
    drain_timeout_s: float | None = None,
    on_progress: Callable[[FleetProgress], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
) -> FleetReport:
    """Publish ``fleet.config.horizon_s`` of simulated time, ``speed`` times faster than real
    (0: as fast as the broker takes it), then wait until every record is acknowledged.

    Samples of the simulated instant ``start + x`` are handed to the agents at wall time
    ``x / speed`` after the start. Stops early on ``stop`` (what is queued is still sent, for
    at most ``drain_timeout_s``); ``drain_timeout_s=None`` waits for the acknowledgements as
    long as it takes. Raises :class:`FleetError` when devices cannot connect.
    """
    period = fleet.config.sample_period_s
    horizon = fleet.config.horizon_s
    # steps of whole sample periods, about _STEP_WALL_S of wall time each
    step = period * max(1, math.floor(speed * _STEP_WALL_S / period)) if speed > 0 \
        else period * batch_samples
    batching = BatchingSection(max_samples=batch_samples, max_age_s=batch_samples * period,
                               age_clock="sample")
    devices = fleet.devices[first_index:]
    passwords = passwords or {}
    started = clock()
    async with contextlib.AsyncExitStack() as stack:
        opened = await open_devices(
            stack, devices, broker, queue_dir, passwords, tenant=fleet.config.tenant,
            batching=batching, status_interval_s=status_interval_s, sample_period_s=period)
        uplinks = [uplink for _, uplink in opened]
        await wait_connected(uplinks, connect_timeout_s, stop)

        def progress(simulated: float, draining: bool = False) -> FleetProgress:
            return FleetProgress(
                simulated_s=simulated, horizon_s=horizon,
                queued_records=sum(u.queue.depth for u in uplinks),
                acked_records=sum(u.records_acked for u in uplinks),
                connected=sum(u.connected.is_set() for u in uplinks), devices=len(uplinks),
                draining=draining)

        started = clock()
        simulated = 0.0
        samples = 0
        while simulated < horizon and not stop.is_set():
            block = min(step, horizon - simulated)
            if speed > 0:
                # the block's samples exist once its last instant has passed in simulated time
                due = started + (simulated + block) / speed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, due - clock()))
                if stop.is_set():
                    break
            for device, uplink in opened:
                t, values = device.next_block(block)
                uplink.agent.add_samples(t, values)
                uplink.notify()
            samples += round(block / period)
            simulated += block
            on_progress(progress(simulated))
            await asyncio.sleep(0)  # let the uplinks send between steps at any speed
        for _, uplink in opened:
            uplink.agent.close()
            uplink.notify()
        drain_deadline = None if drain_timeout_s is None else clock() + drain_timeout_s
        for uplink in uplinks:
            while not await uplink.wait_drained(1.0):
                on_progress(progress(simulated, draining=True))
                if stop.is_set() and drain_deadline is None:
                    drain_deadline = clock() + 10.0  # stopped while draining: a last short wait
                if drain_deadline is not None and clock() >= drain_deadline:
                    break
            if drain_deadline is not None and clock() >= drain_deadline:
                break
        on_progress(progress(simulated, draining=True))
        results = agent_runs(opened, samples)
    return FleetReport(results, simulated, clock() - started)
