"""Runs one edge agent (`forewarn edge run`): the wiring place of the edge side, settings →
disk queue → batcher → agent → uplink, fed by a sample source; :mod:`forewarn.fleet` runs many."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import Batcher
from edge.queue import DiskQueue
from edge.uplink import BrokerConfig, TlsFiles, Uplink
from forewarn.edge.settings import BrokerSection, EdgeSettings
from forewarn.edge.sources import SampleSource, build_source

__all__ = ["AgentRun", "broker_config", "new_boot_id", "open_agent", "run_agent"]


@dataclass(frozen=True, slots=True)
class AgentRun:
    """What one agent did in this run (the queue's counters span restarts)."""

    device_id: str
    boot_id: str
    samples: int
    queue_depth: int
    accepted_samples: int
    acked_samples: int
    dropped_samples: int
    connects: int


def new_boot_id() -> str:
    """A fresh id for this start of the agent: batches are numbered from 0 within it."""
    return secrets.token_hex(4)


def open_agent(settings: EdgeSettings, product: str, fields: tuple[str, ...],
               sample_period_s: float) -> EdgeAgent:
    """Queue, batcher and agent for ``settings`` (staged samples of a crashed run recovered)."""
    settings.queue.path.parent.mkdir(parents=True, exist_ok=True)
    queue = DiskQueue(settings.queue.path, max_bytes=settings.queue.max_bytes,
                      max_age_s=settings.queue.max_age_s,
                      synchronous=settings.queue.synchronous)
    batcher = Batcher(settings.device_id, new_boot_id(), product, fields,
                      max_samples=settings.batching.max_samples,
                      max_age_s=settings.batching.max_age_s,
                      firmware=settings.firmware, age_clock=settings.batching.age_clock)
    return EdgeAgent(settings.tenant, batcher, queue=queue,
                     compress_above_bytes=settings.batching.compress_above_bytes,
                     sample_period_s=sample_period_s,
                     status_interval_s=settings.status_interval_s)


def broker_config(section: BrokerSection) -> BrokerConfig:
    """The uplink's view of ``[broker]``."""
    tls = TlsFiles(section.tls.ca_file, section.tls.cert_file, section.tls.key_file) \
        if section.tls else None
    return BrokerConfig(host=section.host, port=section.port, username=section.username,
                        password=section.password, tls=tls, keepalive_s=section.keepalive_s,
                        session_expiry_s=section.session_expiry_s, timeout_s=section.timeout_s)


async def run_agent(settings: EdgeSettings, stop: asyncio.Event,
                    source: SampleSource | None = None,
                    max_samples: int | None = None,
                    on_state: Callable[[str], None] | None = None) -> AgentRun:
    """Sample, queue and send until ``stop`` is set (or ``max_samples`` were taken, or the
    source ended); then queue the open batch and keep sending up to ``drain_timeout_s``.

    ``on_state`` gets one line per change of the broker connection (connecting, connected,
    cannot reach … retrying in N s, lost)."""
    source = source or build_source(settings.source)
    agent = open_agent(settings, source.product, source.fields, settings.source.sample_period_s)
    assert agent.queue is not None
    backoff = Backoff(settings.broker.backoff_base_s, settings.broker.backoff_cap_s)
    samples = 0
    stopped = asyncio.ensure_future(stop.wait())
    try:
        async with Uplink(agent, broker_config(settings.broker), window=settings.broker.window,
                          backoff=backoff, on_state=on_state) as uplink:
            next_at = time.monotonic()
            while not stop.is_set() and (max_samples is None or samples < max_samples):
                if not source.self_paced:
                    next_at += agent.sample_period_s or settings.source.sample_period_s
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.wait({stopped}, timeout=delay)
                    if stop.is_set():
                        break
                    sample = await source.read()
                else:
                    sample = await _first(source.read(), stopped)
                if sample is None:
                    break
                t, row = sample
                records = agent.queue.records_put
                agent.add_samples(np.array([t]), np.array([row], dtype=np.float64))
                agent.poll()
                if agent.queue.records_put != records:
                    uplink.notify()
                samples += 1
            agent.close()
            uplink.notify()
            await uplink.wait_drained(settings.drain_timeout_s)
            connects = uplink.connects
    finally:
        stopped.cancel()
        await source.aclose()
        stats = agent.queue.stats()
        agent.queue.close()
    return AgentRun(settings.device_id, agent.batcher.boot_id, samples, stats.depth,
                    stats.accepted_samples, stats.acked_samples, stats.dropped_samples, connects)


async def _first(read: Awaitable[tuple[float, list[float]] | None],
                 stopped: asyncio.Future[Any]) -> tuple[float, list[float]] | None:
    reading = asyncio.ensure_future(read)
    await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not reading.done():
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return None
    return reading.result()
