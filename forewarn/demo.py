"""The demo: the service (:class:`forewarn.service.Service`) run on a simulated fleet.

Simulated fleet → edge agents → MQTT → the service's core → rules → outbox, wired by the same
:class:`~forewarn.service.Service` as ``forewarn core`` from the same settings, so the demo
proves the production path. Only where files go differs (the case database, the store and the
notices under ``--out``), and the service's clock: the demo runs in simulated time. The cases'
clock is the newest sample ingested, and the rules tick (devices gone silent, escalation,
auto-resolve) at that time less two publishing blocks, so a device whose batch is still on its
way is not taken for silent.

Runs on the embedded defaults (in-process broker, SQLite files under ``--out``) unless an external
broker is configured. Usage::

    summary = asyncio.run(run_demo(load_settings(None), DemoOptions(devices=12, hours=72)))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.config import MqttConfig
from core.events import ScoredBatch
from core.service import CoreService
from core.store.base import SeriesFrame
from edge.agent import EdgeAgent
from edge.batcher import Batcher
from edge.tasks import cancel_and_wait
from edge.uplink import Uplink
from firmware_sim.fleet import Fleet, FleetConfig
from firmware_sim.truth import write_jsonl
from forewarn.broker import BrokerError, EmbeddedBroker, free_port, port_in_use
from forewarn.casedb import DEMO_CASES
from forewarn.demo_payloads import MappedPayloads
from forewarn.edge import BatchingSection, BrokerSection
from forewarn.errors import ForewarnError
from forewarn.fleet.agents import open_devices, wait_connected
from forewarn.fleet.errors import FleetError
from forewarn.fleet.plan import DEMO_FAULT_FRACTION, DEMO_FAULT_KINDS
from forewarn.report.demo_calls import post_simulated_calls
from forewarn.service import Service
from forewarn.settings import Settings
from forewarn.summary import DemoSummary, OpenedCase, summarise

__all__ = [
    "DemoOptions",
    "SimulatedClock",
    "broker_port",
    "demo_settings",
    "publish_fleet",
    "replace_run",
    "run_demo",
]


#: how long a device waits for the broker (to connect, to acknowledge its queue)
_PUBACK_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo simulates and where it writes."""

    devices: int = 12
    hours: float = 96.0
    seed: int = 7
    #: simulated seconds per wall second; 0: as fast as the broker takes it
    speed: float = 0.0
    batch_samples: int = 30
    out_dir: Path = Path("var/demo")
    show_notices: bool = True
    progress: bool = True
    ingest_timeout_s: float = 120.0
    #: fault kinds injected (empty: every kind the product has)
    fault_kinds: tuple[str, ...] = DEMO_FAULT_KINDS
    fault_fraction: float = DEMO_FAULT_FRACTION
    #: ``native`` (forewarn's schema), or a fleet speaking ``json`` or ``sparkplug`` through a
    #: mapping (forewarn.demo_payloads)
    payload: Literal["native", "json", "sparkplug"] = "native"


async def _no_settle(samples: int) -> None:
    """Do not wait for the core."""


async def publish_fleet(
    fleet: Fleet,
    mqtt: MqttConfig,
    options: DemoOptions,
    queue_dir: Path,
    on_progress: Callable[[float], None] = lambda _: None,
    settle: Callable[[int], Awaitable[None]] = _no_settle,
    payloads: MappedPayloads | None = None,
) -> int:
    """Run one edge agent per simulated device until the horizon; return samples published.

    Each device is the real agent's path, as in ``forewarn fleet``: a disk queue under
    ``queue_dir`` and an :class:`edge.uplink.Uplink`, on the caller's event loop. After each
    device's block is acknowledged, ``settle(samples published so far)`` may wait until the
    core has taken them: the core then sees the fleet in one order on every run.
    """
    period = fleet.config.sample_period_s
    block_s = options.batch_samples * period
    # no compression (the demo's payloads as the mappings read them), status once a wall hour
    batching = BatchingSection(max_samples=options.batch_samples, max_age_s=block_s,
                               age_clock="sample", compress_above_bytes=None)
    broker = BrokerSection(host=mqtt.host, port=mqtt.port, protocol=mqtt.protocol,
                           timeout_s=_PUBACK_TIMEOUT_S)
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        opened = await open_devices(
            stack, fleet.devices, broker, queue_dir, {}, tenant=fleet.config.tenant,
            batching=batching, status_interval_s=3600.0, sample_period_s=period)
        uplinks = [uplink for _, uplink in opened]
        if payloads is not None:
            for uplink in uplinks:
                payloads.into_queue(uplink.queue)
        await wait_connected(uplinks, _PUBACK_TIMEOUT_S, stop)
        started = time.monotonic()
        simulated = 0.0
        while simulated < fleet.config.horizon_s:
            step = min(block_s, fleet.config.horizon_s - simulated)
            for device, uplink in opened:
                t, values = device.next_block(step)
                uplink.agent.add_samples(t, values)
                uplink.notify()
                await _drained(uplink)
                await settle(sum(u.agent.samples_sent for u in uplinks))
            simulated += step
            on_progress(simulated)
            if options.speed > 0:
                ahead = simulated / options.speed - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        for uplink in uplinks:
            uplink.agent.close()
            uplink.notify()
        for uplink in uplinks:
            await _drained(uplink)
        return sum(uplink.agent.samples_sent for uplink in uplinks)


async def _drained(uplink: Uplink) -> None:
    """Wait until ``uplink`` has sent its queue; :class:`FleetError` if the broker stops
    acknowledging."""
    if not await uplink.wait_drained(_PUBACK_TIMEOUT_S):
        raise FleetError(f"{uplink.client_id}: {uplink.queue.depth} records not acknowledged "
                         f"within {_PUBACK_TIMEOUT_S:g} s ({uplink.last_error or 'no answer'})")


class SimulatedClock:
    """The demo's time: the newest sample the service ingested (``start`` before any).

    >>> clock = SimulatedClock(100.0)
    >>> clock.saw(160.0); clock.saw(130.0); clock()
    160.0
    """

    def __init__(self, start: float) -> None:
        self.newest = start

    def saw(self, ts: float) -> None:
        """A sample stamped ``ts`` was ingested."""
        self.newest = max(self.newest, ts)

    def __call__(self) -> float:
        return self.newest


def demo_settings(settings: Settings, out_dir: Path) -> Settings:
    """``settings`` with the run's files (cases, notices, an embedded store) under ``out_dir``."""
    update: dict[str, object] = {"cases": settings.cases.model_copy(update={
        "url": f"sqlite:///{out_dir / DEMO_CASES}",
        "notices_jsonl": out_dir / "notices.jsonl"})}
    if settings.store.kind == "embedded":
        update["store"] = settings.store.model_copy(update={"path": out_dir / "telemetry.sqlite"})
    return settings.model_copy(update=update)


class _NoStore:
    """A store that keeps nothing, for :func:`_compile_core`."""

    def write(self, batch: ScoredBatch) -> None:
        """Discard."""

    def read(self, tenant: str, device_id: str, start: float, stop: float,
             every_s: float = 0.0) -> SeriesFrame:
        """Nothing was kept."""
        return SeriesFrame((), np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0)))

    def count_samples(self, tenant: str | None = None) -> int:
        """Nothing was kept."""
        return 0

    def close(self) -> None:
        """Nothing to release."""


def _compile_core(service: Service, options: DemoOptions, hours: float = 30.0) -> None:
    """Feed a day and more of one simulated device through a throwaway core pipeline.

    Numba compiles the decoder's and the detector's kernels at their first call (seconds on a
    machine's first run, a cold cache). In the run that would block the event loop the
    embedded broker shares, while it waits for the core to acknowledge a message (amqtt waits
    5 s, then logs a traceback). Past the warm-up, so the scoring kernels compile too.
    """
    fleet = Fleet(FleetConfig(devices=1, seed=options.seed, horizon_s=hours * 3600.0,
                              tenant=service.settings.tenant, fault_kinds=options.fault_kinds))
    device = fleet.devices[0]
    block_s = options.batch_samples * fleet.config.sample_period_s
    sent: list[tuple[str, bytes]] = []
    batcher = Batcher(device.device_id, "compile", device.product.name, device.product.fields,
                      max_samples=options.batch_samples, max_age_s=block_s)
    agent = EdgeAgent(device.tenant, batcher, lambda topic, payload: sent.append(
        (topic, payload)))
    pipeline = service.core_pipeline(_NoStore())
    simulated = 0.0
    while simulated < fleet.config.horizon_s:
        agent.add_samples(*device.next_block(block_s))
        simulated += block_s
        for topic, payload in sent:
            pipeline.process_payload(topic, payload)
        sent.clear()


async def _nothing_in_flight() -> bool:
    return True


@contextlib.asynccontextmanager
async def _broker(settings: Settings,
                  ) -> AsyncIterator[tuple[MqttConfig, Callable[[], Awaitable[bool]]]]:
    """The MQTT settings to use, and how to wait until the broker has delivered everything."""
    if settings.broker.embedded:
        async with EmbeddedBroker(settings.mqtt.host, settings.mqtt.port) as broker:
            yield (settings.mqtt.model_copy(update={"port": broker.port, "protocol": "3.1.1"}),
                   broker.drained)
    else:
        yield settings.mqtt, _nothing_in_flight


async def run_demo(
    settings: Settings, options: DemoOptions, console: Console | None = None
) -> DemoSummary:
    """Run the whole path once and return what happened, judged against the ground truth."""
    console = console or Console()
    wall_start = time.monotonic()
    # faults begin after the first simulated day: detectors learn a full daily cycle first
    fleet = Fleet(FleetConfig(devices=options.devices, seed=options.seed,
                              horizon_s=options.hours * 3600.0, tenant=settings.tenant,
                              onset_window=(0.3, 0.5), fault_kinds=options.fault_kinds,
                              fault_fraction=options.fault_fraction))
    clock = SimulatedClock(fleet.config.start)
    payloads = (None if options.payload == "native" else
                MappedPayloads(options.payload, settings.tenant))
    if payloads is not None:  # the fleet speaks its own payloads: a mapping takes them
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(
            update={"mapping": [*settings.ingest.mapping, payloads.mapping()]})})
    # read and check everything the settings name before the previous run's files go
    service = Service(demo_settings(settings, options.out_dir), clock=clock,
                      echo=options.show_notices, console=console)
    if options.out_dir.exists():
        shutil.rmtree(options.out_dir)
    options.out_dir.mkdir(parents=True)

    store = service.open_store()
    engine = service.connect_cases()
    rules_pipeline = service.rules_pipeline(engine)
    casebook = rules_pipeline.casebook
    pipeline = service.core_pipeline(store, engine)
    outbox = service.outbox(engine, base_delay_s=0.2)
    # ticks lag the newest sample by two publishing blocks: every device's block is in
    lag_s = 2 * options.batch_samples * fleet.config.sample_period_s

    async def sink(batch: ScoredBatch) -> None:
        if batch.n_samples:
            clock.saw(float(batch.t[-1]))
        # on the loop, unlike the services (handle_in_thread): the demo's embedded broker, its
        # publisher thread and the core share one process, and with the rules on a thread of
        # their own amqtt logged late acknowledgements (tests/unit/test_demo_cli.py); the
        # demo's case database is a local file and quick
        rules_pipeline.handle(batch)

    async def tick_at() -> float | None:
        return clock() - lag_s if clock() - lag_s > fleet.config.start else None

    stop = asyncio.Event()
    await asyncio.to_thread(_compile_core, service, options)
    try:
        async with _broker(settings) as (mqtt, drained):
            core_mqtt = mqtt.model_copy(
                update={"client_id": f"forewarn-core-{uuid.uuid4().hex[:6]}"})
            core = CoreService(core_mqtt, pipeline, sink)
            core.ingestor.extra_subscriptions = tuple(dict.fromkeys(
                m.pattern.subscription for m in service.settings.ingest.mapping))
            tasks = [asyncio.create_task(core.run()),
                     asyncio.create_task(service.dispatch(stop, outbox, idle_s=0.1)),
                     asyncio.create_task(service.tick_forever(rules_pipeline, stop, 0.1,
                                                              tick_at))]
            try:
                await asyncio.wait_for(core.ingestor.connected.wait(), 30)
                with Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=not options.progress,
                    transient=False,
                ) as progress:
                    horizon_h = int(options.hours)
                    sim_task = progress.add_task("simulated hours published", total=horizon_h)

                    def report(simulated_s: float) -> None:
                        progress.update(sim_task, completed=int(simulated_s // 3600))

                    async def settle(samples: int) -> None:
                        # one device's block at a time, each taken by the core before the
                        # next: case numbers repeat with the seed (devices racing each other
                        # swapped them), and the embedded broker never holds a backlog for
                        # the core (amqtt gives a subscriber 5 s to acknowledge a message)
                        until = time.monotonic() + options.ingest_timeout_s
                        while (pipeline.stats.samples_ingested < samples
                               and time.monotonic() < until):
                            await asyncio.sleep(0.0005)

                    # the devices' disk queues, gone with the run
                    with tempfile.TemporaryDirectory(prefix=".edge-queues-",
                                                     dir=options.out_dir) as queues:
                        published = await publish_fleet(fleet, mqtt, options, Path(queues),
                                                        report, settle, payloads)
                    progress.update(sim_task, completed=horizon_h)
                    ingest_task = progress.add_task("samples ingested", total=published)
                    deadline = time.monotonic() + options.ingest_timeout_s
                    while pipeline.stats.samples_ingested < published:
                        progress.update(ingest_task, completed=pipeline.stats.samples_ingested)
                        if time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.05)
                    progress.update(ingest_task, completed=pipeline.stats.samples_ingested)
                # everything is in: the rules' last tick at the end of the simulated time,
                # then deliver what is due by then (a notice waiting out the customer's quiet
                # hours past the end stays pending)
                await rules_pipeline.tick_in_thread(clock())
                while await outbox.dispatch_once() and time.monotonic() < deadline:
                    pass
                # the core acknowledges its last messages before it disconnects (amqtt warns
                # about an acknowledgement that comes after)
                await drained()
            finally:
                stop.set()
                await cancel_and_wait(tasks[:1])  # the others end on ``stop``
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        rules_pipeline.close()
        store.close()

    opened = [OpenedCase(c.id, c.device_id, c.rule, c.opened_at) for c in casebook.cases()]
    summary = summarise(
        fleet.ground_truth, opened, devices=options.devices, published=published,
        ingested=pipeline.stats.samples_ingested,
        duplicates=pipeline.stats.duplicate_batches,
        notices_sent=outbox.counts().get("sent", 0),
        dead_letters=pipeline.dead_letters.total,
    )
    summary.wall_time_s = round(time.monotonic() - wall_start, 2)
    write_jsonl(options.out_dir / "ground_truth.jsonl", fleet.ground_truth)
    # the customers' calls as helpdesk tickets: 'forewarn report proactivity --demo-dir' reads
    # them (issue 19)
    post_simulated_calls(engine, settings.tenant, fleet.ground_truth, fleet.config.end,
                         service.configured.registry)
    engine.dispose()
    return summary


def broker_port(settings: Settings, requested: int | None) -> Settings:
    """Settings whose MQTT port the embedded broker can listen on now.

    A port given with ``--port`` that is in use is a one-line error; the configured port in
    use (another broker on 1883) moves the demo's own broker to a free port, with a note.
    """
    port = settings.mqtt.port if requested is None else requested
    if not 0 <= port <= 65535:
        raise ForewarnError(f"--port {port}: give a port from 0 (any free one) to 65535")
    if settings.broker.embedded and port and port_in_use(settings.mqtt.host, port):
        if requested is not None:
            raise BrokerError(f"--port {port}: {settings.mqtt.host}:{port} is in use (another "
                              "broker?): choose another port, or --port 0 for any free one")
        port = free_port(settings.mqtt.host)
        print(f"forewarn: note: {settings.mqtt.host}:{settings.mqtt.port} is in use: the "
              f"demo's broker listens on port {port} instead (--port chooses)", file=sys.stderr)
    elif not settings.broker.embedded and port == 0:
        raise ForewarnError("--port 0 (any free port) needs the embedded broker")
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": port})})


def replace_run(target: Path, new: Path) -> None:
    """Put the finished run ``new`` where ``target`` was (the old run goes only now)."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)
