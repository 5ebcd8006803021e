"""The demo, wired in one place: simulated fleet → edge agents → MQTT → core → rules → notices.

Runs on the embedded defaults (in-process broker, SQLite files under ``--out``) unless an external
broker is configured. Usage::

    summary = asyncio.run(run_demo(load_settings(None), DemoOptions(devices=12, hours=72)))
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.config import MqttConfig
from core.detect import make_detector
from core.events import ScoredBatch
from core.limits import ProductLimits, load_limits
from core.pipeline import CorePipeline
from core.service import CoreService
from core.store.base import SeriesFrame
from core.store.config import make_store
from edge.agent import EdgeAgent
from edge.batcher import Batcher
from edge.publisher import MqttPublisher
from firmware_sim.fleet import Fleet, FleetConfig
from firmware_sim.truth import write_jsonl
from forewarn.broker import EmbeddedBroker
from forewarn.casedb import DEMO_CASES, open_case_db
from forewarn.errors import ForewarnError
from forewarn.settings import Settings
from forewarn.summary import DemoSummary, OpenedCase, summarise
from rules.cases import CaseBook
from rules.errors import RuleFileError
from rules.model import load_rules
from rules.notifiers.terminal import TerminalNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline

__all__ = ["DemoOptions", "publish_fleet", "run_demo"]


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
    fault_kinds: tuple[str, ...] = ("refrigerant_leak",)
    fault_fraction: float = 0.25


def publish_fleet(
    fleet: Fleet,
    mqtt: MqttConfig,
    options: DemoOptions,
    on_progress: Callable[[float], None] = lambda _: None,
    settle: Callable[[int], None] = lambda _: None,
) -> int:
    """Run one edge agent per simulated device until the horizon; return samples published.

    After each device's block, ``settle(messages published so far)`` may wait until the core
    has taken them: the core then sees the fleet in one order on every run.
    Blocking (paho runs its own network threads): call it in a worker thread.
    """
    block_s = options.batch_samples * fleet.config.sample_period_s
    agents: list[tuple[EdgeAgent, MqttPublisher]] = []
    try:
        for device in fleet.devices:
            publisher = MqttPublisher(
                device.device_id, mqtt.host, mqtt.port, protocol=mqtt.protocol
            )
            publisher.connect()
            batcher = Batcher(
                device.device_id, uuid.uuid4().hex[:12], device.product.name,
                device.product.fields, max_samples=options.batch_samples, max_age_s=block_s,
            )
            agents.append((EdgeAgent(device.tenant, batcher, publisher.publish), publisher))
        started = time.monotonic()
        simulated = 0.0
        while simulated < fleet.config.horizon_s:
            step = min(block_s, fleet.config.horizon_s - simulated)
            for device, (agent, _) in zip(fleet.devices, agents, strict=True):
                t, values = device.next_block(step)
                agent.add_samples(t, values)
                settle(sum(publisher.published for _, publisher in agents))
            simulated += step
            on_progress(simulated)
            if options.speed > 0:
                ahead = simulated / options.speed - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        for agent, publisher in agents:
            agent.close()
            publisher.drain()
        return sum(agent.samples_sent for agent, _ in agents)
    finally:
        for _, publisher in agents:
            publisher.close()


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


def _compile_core(settings: Settings, options: DemoOptions, limits: ProductLimits | None,
                  hours: float = 30.0) -> None:
    """Feed a day and more of one simulated device through a throwaway core pipeline.

    Numba compiles the decoder's and the detector's kernels at their first call (seconds on a
    machine's first run, a cold cache). In the run that would block the event loop the
    embedded broker shares, while it waits for the core to acknowledge a message (amqtt waits
    5 s, then logs a traceback). Past the warm-up, so the scoring kernels compile too.
    """
    fleet = Fleet(FleetConfig(devices=1, seed=options.seed, horizon_s=hours * 3600.0,
                              tenant=settings.tenant, fault_kinds=options.fault_kinds))
    device = fleet.devices[0]
    block_s = options.batch_samples * fleet.config.sample_period_s
    sent: list[tuple[str, bytes]] = []
    batcher = Batcher(device.device_id, "compile", device.product.name, device.product.fields,
                      max_samples=options.batch_samples, max_age_s=block_s)
    agent = EdgeAgent(device.tenant, batcher, lambda topic, payload: sent.append(
        (topic, payload)))
    pipeline = CorePipeline(make_detector(settings.detector), _NoStore(),
                            event_threshold=settings.core.event_threshold, limits=limits)
    simulated = 0.0
    while simulated < fleet.config.horizon_s:
        agent.add_samples(*device.next_block(block_s))
        simulated += block_s
        for topic, payload in sent:
            pipeline.process_payload(topic, payload)
        sent.clear()


@contextlib.asynccontextmanager
async def _broker(settings: Settings) -> AsyncIterator[MqttConfig]:
    if settings.broker.embedded:
        async with EmbeddedBroker(settings.mqtt.host, settings.mqtt.port) as broker:
            yield settings.mqtt.model_copy(update={"port": broker.port, "protocol": "3.1.1"})
    else:
        yield settings.mqtt


async def run_demo(
    settings: Settings, options: DemoOptions, console: Console | None = None
) -> DemoSummary:
    """Run the whole path once and return what happened, judged against the ground truth."""
    console = console or Console()
    wall_start = time.monotonic()
    if options.out_dir.exists():
        shutil.rmtree(options.out_dir)
    options.out_dir.mkdir(parents=True)
    try:
        rules = load_rules(settings.cases.rules_file)
    except RuleFileError as exc:
        raise ForewarnError(str(exc)) from exc

    # faults begin after the first simulated day: detectors learn a full daily cycle first
    fleet = Fleet(FleetConfig(devices=options.devices, seed=options.seed,
                              horizon_s=options.hours * 3600.0, tenant=settings.tenant,
                              onset_window=(0.3, 0.5), fault_kinds=options.fault_kinds,
                              fault_fraction=options.fault_fraction))
    store_config = settings.store
    if store_config.kind == "embedded":
        store_config = store_config.model_copy(
            update={"path": options.out_dir / "telemetry.sqlite"})
    store = make_store(store_config)
    engine = open_case_db(f"sqlite:///{options.out_dir / DEMO_CASES}")
    casebook = CaseBook(engine, channel="terminal", clock=time.time)
    rules_pipeline = RulesPipeline(rules, casebook)
    limits_file = settings.core.limits_file  # [core] limits_file; absent file: no limits
    limits = (load_limits(limits_file) if limits_file is not None and limits_file.exists()
              else None)
    pipeline = CorePipeline(make_detector(settings.detector), store,
                            event_threshold=settings.core.event_threshold,
                            dedup_window=settings.core.dedup_window, limits=limits)
    notifier = TerminalNotifier(options.out_dir / "notices.jsonl", echo=options.show_notices,
                                console=console)
    outbox = Outbox(engine, {"terminal": notifier}, clock=time.time, base_delay_s=0.2)

    async def dispatch_forever() -> None:
        while True:
            await outbox.dispatch_once()
            await asyncio.sleep(0.1)

    await asyncio.to_thread(_compile_core, settings, options, limits)
    try:
        async with _broker(settings) as mqtt:
            core_mqtt = mqtt.model_copy(
                update={"client_id": f"forewarn-core-{uuid.uuid4().hex[:6]}"})
            service = CoreService(core_mqtt, pipeline, rules_pipeline.handle_in_thread)
            core_task = asyncio.create_task(service.run())
            dispatcher = asyncio.create_task(dispatch_forever())
            try:
                await asyncio.wait_for(service.ingestor.connected.wait(), 30)
                with Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=not options.progress,
                    transient=False,
                ) as progress:
                    horizon_h = int(options.hours)
                    sim_task = progress.add_task("simulated hours published", total=horizon_h)
                    loop = asyncio.get_running_loop()

                    def report(simulated_s: float) -> None:
                        done = int(simulated_s // 3600)
                        loop.call_soon_threadsafe(
                            lambda: progress.update(sim_task, completed=done))

                    def settle(messages: int) -> None:
                        # one device's block at a time, each taken by the core before the
                        # next: case numbers repeat with the seed (devices racing each other
                        # swapped them), and the embedded broker never holds a backlog for
                        # the core (amqtt gives a subscriber 5 s to acknowledge a message)
                        until = time.monotonic() + options.ingest_timeout_s
                        while (pipeline.stats.messages < messages
                               and time.monotonic() < until):
                            time.sleep(0.0005)

                    published = await asyncio.to_thread(publish_fleet, fleet, mqtt, options,
                                                        report, settle)
                    progress.update(sim_task, completed=horizon_h)
                    ingest_task = progress.add_task("samples ingested", total=published)
                    deadline = time.monotonic() + options.ingest_timeout_s
                    while pipeline.stats.samples_ingested < published:
                        progress.update(ingest_task, completed=pipeline.stats.samples_ingested)
                        if time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.05)
                    progress.update(ingest_task, completed=pipeline.stats.samples_ingested)
                # deliver what the last batches queued
                while outbox.pending() and time.monotonic() < deadline:
                    await outbox.dispatch_once()
                    await asyncio.sleep(0.05)
            finally:
                for task in (core_task, dispatcher):
                    task.cancel()
                for task in (core_task, dispatcher):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
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
    engine.dispose()
    return summary
