"""``forewarn fleet``: a simulated fleet of edge agents in one process, against a real broker.

Two ways to run it, both with one MQTT connection, one disk queue and one identity per device
(username = device id, password from a credentials file or one shared password):

* **simulated time** (:func:`drive_fleet`, ``--hours H --speed S``): the demo's fleet (its
  products, faults and imperfections, deterministic for the seed) lives ``H`` hours of
  simulated time, ``S`` times faster than real time, then says goodbye and ends once every
  batch is acknowledged (QoS 1). Drives a running ``forewarn core`` through days of device
  life in minutes; the ground truth (which device has which fault, when its customer calls)
  is written first, so a test can judge the service against it.
* **load test** (:func:`run_fleet`, ``--rate R``): devices stream in real time until stopped.

A credentials file has one ``device_id password`` pair per line (what ``forewarn devices add``
prints when it generates a password; ``#`` starts a comment):

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "fleet.credentials"
...     _ = path.write_text("# device password\\nhp-0000 s3cret\\nhp-0001  other\\n")
...     load_credentials(path)
{'hp-0000': 's3cret', 'hp-0001': 'other'}
>>> plan = FleetPlan(devices=4, hours=2.0, seed=7, start=1_767_225_600.0)
>>> [device.device_id for device in demo_fleet(plan).devices]
['hp-0000', 'hp-0001', 'hp-0002', 'hp-0003']
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.backoff import Backoff
from edge.uplink import Uplink
from firmware_sim.fleet import Fleet, FleetConfig, SimDevice
from forewarn.demo import DemoOptions
from forewarn.edge import (
    AgentRun,
    BatchingSection,
    BrokerSection,
    EdgeSettings,
    QueueSection,
    broker_config,
    open_agent,
)
from forewarn.errors import ConfigError, ForewarnError

__all__ = [
    "DEMO_FAULT_FRACTION",
    "DEMO_FAULT_KINDS",
    "DEMO_ONSET_WINDOW",
    "FleetError",
    "FleetPlan",
    "FleetProgress",
    "FleetReport",
    "demo_fleet",
    "device_passwords",
    "drive_fleet",
    "load_credentials",
    "load_test_fleet",
    "run_fleet",
]

#: the demo's faults: what ``forewarn demo`` injects (its DemoOptions' defaults)
DEMO_FAULT_KINDS: tuple[str, ...] = DemoOptions().fault_kinds
DEMO_FAULT_FRACTION = DemoOptions().fault_fraction
#: faults begin after 30 % of the run: detectors learn a full daily cycle first
DEMO_ONSET_WINDOW = (0.3, 0.5)
#: wall seconds between two publishing steps in simulated time (at most: a step is at least
#: one sample period)
_STEP_WALL_S = 0.25


class FleetError(ForewarnError):
    """The fleet could not do what it was asked (devices that cannot log in, unsent records)."""


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """Which simulated fleet: ``devices`` devices from index ``first_index``, ``hours`` long
    from ``start`` (epoch seconds of simulated time)."""

    devices: int
    hours: float
    seed: int
    start: float
    tenant: str = "demo"
    first_index: int = 0
    products: tuple[str, ...] = ()
    fault_kinds: tuple[str, ...] = DEMO_FAULT_KINDS
    fault_fraction: float = DEMO_FAULT_FRACTION


def demo_fleet(plan: FleetPlan) -> Fleet:
    """The demo's fleet for ``plan``: same seed, same devices, faults and imperfections."""
    return Fleet(FleetConfig(
        devices=plan.first_index + plan.devices, seed=plan.seed, tenant=plan.tenant,
        start=plan.start, horizon_s=plan.hours * 3600.0, products=plan.products,
        onset_window=DEMO_ONSET_WINDOW, fault_kinds=plan.fault_kinds,
        fault_fraction=plan.fault_fraction,
    ))


def load_credentials(path: Path) -> dict[str, str]:
    """``device_id password`` pairs from ``path``; :class:`ConfigError` names a bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    credentials: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{path}:{number}: expected 'device_id password', "
                              f"found {len(parts)} words")
        credentials[parts[0]] = parts[1]
    return credentials


def device_passwords(device_ids: Sequence[str], credentials: Mapping[str, str] | None,
                     password: str | None) -> dict[str, str | None]:
    """Each device's password: its own from ``credentials``, else the shared ``password``.

    With credentials and no shared password, a device missing from them is an error (it could
    not log in, and finding that out device by device at the broker is slow)."""
    credentials = credentials or {}
    missing = [d for d in device_ids if d not in credentials]
    if credentials and missing and password is None:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ConfigError(f"no password for {len(missing)} device(s) in the credentials "
                          f"file: {shown}")
    return {d: credentials.get(d, password) for d in device_ids}


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


async def _open_devices(
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


async def _wait_connected(uplinks: Sequence[Uplink], timeout_s: float,
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


def _results(opened: Sequence[tuple[SimDevice, Uplink]], samples: int) -> list[AgentRun]:
    results = []
    for _, uplink in opened:
        stats = uplink.queue.stats()
        agent = uplink.agent
        results.append(AgentRun(agent.device_id, agent.batcher.boot_id, samples, stats.depth,
                                stats.accepted_samples, stats.acked_samples,
                                stats.dropped_samples, uplink.connects))
    return results


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
        opened = await _open_devices(
            stack, devices, broker, queue_dir, passwords, tenant=fleet.config.tenant,
            batching=batching, status_interval_s=status_interval_s, sample_period_s=period)
        uplinks = [uplink for _, uplink in opened]
        await _wait_connected(uplinks, connect_timeout_s, stop)

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
        results = _results(opened, samples)
    return FleetReport(results, simulated, clock() - started)


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
        opened = await _open_devices(
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
        return _results(opened, ticks)


def load_test_fleet(devices: int, seed: int, tenant: str, rate_hz: float,
                    first_index: int = 0) -> Fleet:
    """The heat pumps of a load test: one sample every ``1 / rate_hz`` s, starting now."""
    return Fleet(FleetConfig(devices=first_index + devices, seed=seed, tenant=tenant,
                             start=time.time(), sample_period_s=1.0 / rate_hz))

