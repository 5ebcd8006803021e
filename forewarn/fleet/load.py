"""The load test (``forewarn fleet --rate R``): devices stream in real time until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path

from firmware_sim.fleet import Fleet
from forewarn.edge import AgentRun, BatchingSection, BrokerSection
from forewarn.fleet.agents import agent_runs, open_devices

__all__ = ["run_fleet"]


async def run_fleet(
    fleet: Fleet,
    broker: BrokerSection,
    queue_dir: Path,
    stop: asyncio.Event,
    *,
    passwords: Mapping[str, str | None] | None = None,
    first_index: int = 0,
    batching: BatchingSection | None = None,
    status_interval_s: float = 30.0,
    drain_timeout_s: float = 10.0,
) -> list[AgentRun]:
    """Run the devices of ``fleet`` (from ``first_index``) in real time until ``stop``: one
    sample per device every ``fleet.config.sample_period_s`` wall seconds.

    Samples come in a single ticking loop, so a thousand devices cost a thousand rows per tick,
    not a thousand timers.
    """
    batching = batching or BatchingSection()
    period = fleet.config.sample_period_s
    async with contextlib.AsyncExitStack() as stack:
        opened = await open_devices(
            stack, fleet.devices[first_index:], broker, queue_dir, passwords or {},
            tenant=fleet.config.tenant, batching=batching,
            status_interval_s=status_interval_s, sample_period_s=period)
        next_at = time.monotonic()
        ticks = 0
        while True:
            next_at += period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if stop.is_set():
                break
            for device, uplink in opened:
                t, values = device.next_block(period)
                records = uplink.queue.records_put
                uplink.agent.add_samples(t, values)
                uplink.agent.poll()
                if uplink.queue.records_put != records:
                    uplink.notify()
            ticks += 1
        for _, uplink in opened:
            uplink.agent.close()
            uplink.notify()
        deadline = time.monotonic() + drain_timeout_s
        for _, uplink in opened:
            await uplink.wait_drained(max(0.0, deadline - time.monotonic()))
        return agent_runs(opened, ticks)
