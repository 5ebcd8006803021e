"""The fleet's devices as edge agents: one disk queue, agent and MQTT connection (logged in as
the device) per device, the wait until all are connected, and what each did."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.backoff import Backoff
from edge.uplink import Uplink
from firmware_sim.fleet import SimDevice
from forewarn.edge import (
    AgentRun,
    BatchingSection,
    BrokerSection,
    EdgeSettings,
    QueueSection,
    broker_config,
    open_agent,
)
from forewarn.fleet.errors import FleetError

__all__ = ["agent_runs", "open_devices", "wait_connected"]


async def open_devices(
    stack: contextlib.AsyncExitStack, devices: Sequence[SimDevice], broker: BrokerSection,
    queue_dir: Path, passwords: Mapping[str, str | None], *, tenant: str,
    batching: BatchingSection, status_interval_s: float, sample_period_s: float,
) -> list[tuple[SimDevice, Uplink]]:
    """One queue, agent and connected-in-the-background uplink per device."""
    queue_dir.mkdir(parents=True, exist_ok=True)
    opened: list[tuple[SimDevice, Uplink]] = []
    for device in devices:
        settings = EdgeSettings(
            tenant=tenant, device_id=device.device_id, batching=batching,
            status_interval_s=status_interval_s,
            queue=QueueSection(path=queue_dir / f"{device.device_id}.sqlite"),
            broker=broker.model_copy(update={"username": device.device_id,
                                             "password": passwords.get(device.device_id)}),
        )
        agent = open_agent(settings, device.product.name, tuple(device.product.fields),
                           sample_period_s)
        assert agent.queue is not None
        stack.callback(agent.queue.close)
        uplink = Uplink(agent, broker_config(settings.broker), window=broker.window,
                        backoff=Backoff(broker.backoff_base_s, broker.backoff_cap_s))
        await stack.enter_async_context(uplink)
        opened.append((device, uplink))
    return opened


async def wait_connected(uplinks: Sequence[Uplink], timeout_s: float,
                          stop: asyncio.Event) -> None:
    """Wait until every uplink has connected once; :class:`FleetError` names those that did not."""
    deadline = time.monotonic() + timeout_s
    for uplink in uplinks:
        remaining = deadline - time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first_of(uplink.connected, stop), max(remaining, 0.001))
        if stop.is_set():
            return
    failed = [u for u in uplinks if not u.connected.is_set()]
    if failed:
        reasons = sorted({u.last_error or "no answer" for u in failed})
        shown = ", ".join(u.client_id for u in failed[:5]) + (" …" if len(failed) > 5 else "")
        raise FleetError(f"{len(failed)} of {len(uplinks)} devices could not connect to the "
                         f"broker within {timeout_s:g} s ({shown}): {'; '.join(reasons)}")


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def agent_runs(opened: Sequence[tuple[SimDevice, Uplink]], samples: int) -> list[AgentRun]:
    results = []
    for _, uplink in opened:
        stats = uplink.queue.stats()
        agent = uplink.agent
        results.append(AgentRun(agent.device_id, agent.batcher.boot_id, samples, stats.depth,
                                stats.accepted_samples, stats.acked_samples,
                                stats.dropped_samples, uplink.connects))
    return results
