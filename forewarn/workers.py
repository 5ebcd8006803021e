"""Core on NATS JetStream, wired in one place: worker processes and their supervisor.

``forewarn core --engine nats --workers N`` runs a :class:`Supervisor`: it splits the stream's
partitions into N contiguous slices, starts one worker process per slice (each runs
:func:`run_worker`: a :class:`core.nats.NatsEngine` with a detector per partition, the store
and the rules pipeline), restarts a worker that dies, and runs the one outbox dispatcher.

Ownership is static: a partition belongs to the slice that names it, and only the process
running that slice consumes it. nats-py (2.16) has no client side for the pinned-client
priority groups of nats-server 2.11+, and static slices give every worker an equal share and
make "who owns partition 7" a fact of the command line rather than of a race. Several machines
each run ``--partitions`` with their own slice of the range; a dead machine is restarted by its
service manager (systemd, Kubernetes), and its partitions wait in the stream meanwhile.

>>> split_partitions(range(32), 3)
[range(0, 11), range(11, 21), range(21, 32)]
>>> parse_partitions("0-3,8")
[0, 1, 2, 3, 8]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.detect import DetectorConfig, make_detector
from core.limits import ProductLimits, load_limits
from core.nats import NatsConfig, NatsEngine
from core.pipeline import CorePipeline
from core.store.base import HistoryStore, TimeSeriesStore
from core.store.config import InfluxConfig, StoreConfig, make_store
from forewarn.settings import Settings
from rules.cases import CaseBook
from rules.db import connect
from rules.model import load_rules
from rules.notifiers.terminal import TerminalNotifier
from rules.outbox import Outbox
from rules.pipeline import RulesPipeline

__all__ = [
    "Supervisor",
    "WorkerOptions",
    "WorkerProcess",
    "dispatch_outbox",
    "make_worker_store",
    "parse_partitions",
    "run_worker",
    "split_partitions",
]

_log = logging.getLogger(__name__)


def parse_partitions(text: str) -> list[int]:
    """``"0-15"`` or ``"0,2,4-6"`` → sorted partition numbers."""
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            out.update(range(int(low), int(high) + 1))
        elif part.strip():
            out.add(int(part))
    return sorted(out)


def split_partitions(partitions: Sequence[int], workers: int) -> list[Sequence[int]]:
    """Contiguous, near-equal slices of ``partitions``, one per worker."""
    n = len(partitions)
    bounds = [round(i * n / workers) for i in range(workers + 1)]
    return [partitions[bounds[i]:bounds[i + 1]] for i in range(workers)]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What one worker process needs besides the application settings."""

    nats: NatsConfig = field(default_factory=NatsConfig)
    #: InfluxDB (or VictoriaMetrics) URL; None: the embedded store of the settings
    influx_url: str | None = None
    influx_bucket: str = "forewarn"
    detector: DetectorConfig = field(default_factory=DetectorConfig)


def configured_limits(settings: Settings) -> ProductLimits | None:
    """The ``[core] limits_file`` product limits, or None when there is no such file."""
    path = settings.core.limits_file
    return load_limits(path) if path is not None and path.exists() else None


def make_worker_store(settings: Settings, options: WorkerOptions,
                      buffered: bool = False) -> HistoryStore:
    """The store every partition writes to: ``--influx-url`` when given, else ``[store]``.

    NATS workers run without the outage buffer (the stream is the buffer); the direct engine
    keeps ``[store.buffer]`` when it is configured (``buffered=True``).
    """
    if options.influx_url is not None:
        return make_store(StoreConfig(kind="influxdb", influxdb=InfluxConfig(
            url=options.influx_url, bucket=options.influx_bucket, retries=0, timeout_s=5.0)))
    config = settings.store if buffered else settings.store.model_copy(update={"buffer": None})
    return make_store(config)


async def run_worker(settings: Settings, options: WorkerOptions, partitions: Sequence[int],
                     ready_file: Path | None = None) -> None:
    """One worker process: consume ``partitions`` until SIGTERM/SIGINT, then snapshot."""
    store = make_worker_store(settings, options)
    engine_db = await _connect_cases(settings.cases.url)
    rules = RulesPipeline(load_rules(settings.cases.rules_file),
                          CaseBook(engine_db, channel="terminal", clock=time.time))

    def make_pipeline(handoff: TimeSeriesStore) -> CorePipeline:
        return CorePipeline(make_detector(options.detector), handoff,
                            event_threshold=settings.core.event_threshold,
                            dedup_window=settings.core.dedup_window,
                            limits=configured_limits(settings))

    try:
        async with NatsEngine(options.nats, partitions, make_pipeline, store,
                              rules.handle) as engine:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, engine.stop)
            runner = asyncio.create_task(engine.run())
            orphan_watch = asyncio.create_task(_stop_when_orphaned(engine.stop))
            await engine.ready.wait()
            if ready_file is not None:
                ready_file.write_text(f"{time.time()}\n")
            _log.info("worker ready: partitions %s", list(partitions))
            await runner
            orphan_watch.cancel()
        _log.info("worker stopped: partitions %s", list(partitions))
    finally:
        store.close()
        engine_db.dispose()


async def _connect_cases(url: str, attempts: int = 5) -> Engine:
    """The case database; workers starting together race to create its tables, so retry."""
    for attempt in range(attempts):
        try:
            return connect(url)
        except OperationalError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.5))
    raise AssertionError("unreachable")


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """Stop a supervised worker whose supervisor died (its parent becomes someone else)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    _log.warning("supervisor %d is gone; stopping", parent)
    stop()


async def dispatch_outbox(settings: Settings, stop: asyncio.Event, echo: bool = True) -> None:
    """The one outbox dispatcher: delivers pending notices until ``stop`` is set."""
    engine = connect(settings.cases.url)
    notifier = TerminalNotifier(settings.cases.notices_jsonl, echo=echo)
    outbox = Outbox(engine, {"terminal": notifier}, clock=time.time, base_delay_s=0.5)
    try:
        while not stop.is_set():
            await outbox.dispatch_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        engine.dispose()


@dataclass(slots=True)
class WorkerProcess:
    """One supervised worker: its partitions, its process, how often it was restarted."""

    index: int
    partitions: Sequence[int]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


class Supervisor:
    """Starts one process per partition slice and restarts any that exits.

    ``worker_argv(partitions)`` is the command line of one worker (the CLI passes
    ``forewarn core --engine nats --own 0-15 ...``).
    """

    def __init__(self, partitions: Sequence[int], workers: int,
                 worker_argv: list[str], restart_delay_s: float = 0.2) -> None:
        self.worker_argv = worker_argv
        self.restart_delay_s = restart_delay_s
        self.workers = [WorkerProcess(i, part)
                        for i, part in enumerate(split_partitions(partitions, workers))]
        self._stopping = asyncio.Event()
        self._reaper: asyncio.TimerHandle | None = None

    async def _start(self, worker: WorkerProcess) -> None:
        own = ",".join(str(p) for p in worker.partitions)
        worker.process = await asyncio.create_subprocess_exec(
            *self.worker_argv, "--own", own)
        worker.started_at = time.monotonic()
        _log.info("worker %d (pid %d) owns partitions %s", worker.index, worker.process.pid,
                  own)

    async def _keep(self, worker: WorkerProcess) -> None:
        while not self._stopping.is_set():
            await self._start(worker)
            assert worker.process is not None
            code = await worker.process.wait()
            if self._stopping.is_set():
                return
            worker.restarts += 1
            _log.warning("worker %d exited with %s; restarting", worker.index, code)
            # a worker that keeps dying at start-up must not spin the CPU
            quick = time.monotonic() - worker.started_at < 5.0
            await asyncio.sleep(self.restart_delay_s * (10 if quick else 1))

    def stop(self, grace_s: float = 30.0) -> None:
        """Ask every worker to finish its batch, snapshot and exit; kill it after ``grace_s``."""
        self._stopping.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        self._reaper = asyncio.get_running_loop().call_later(grace_s, self._kill_remaining)

    def _kill_remaining(self) -> None:
        # a worker that cannot stop cleanly loses nothing by being killed: its batch is
        # unacknowledged and its partitions restart from their snapshots
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                _log.warning("worker %d did not stop in time; killing it", worker.index)
                worker.process.kill()

    async def run(self) -> None:
        """Supervise until :meth:`stop`; returns when every worker has exited."""
        keepers = [asyncio.create_task(self._keep(w)) for w in self.workers]
        try:
            await asyncio.gather(*keepers)
            if self._reaper is not None:
                self._reaper.cancel()
        finally:
            for worker in self.workers:
                if worker.process is not None and worker.process.returncode is None:
                    worker.process.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(worker.process.wait(), 30)
                    except TimeoutError:
                        worker.process.kill()
                        await worker.process.wait()


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of a worker: this interpreter running the forewarn CLI with ``argv``."""
    return [sys.executable, "-m", "forewarn.cli", *argv]


async def _tick_forever(rules: RulesPipeline, stop: asyncio.Event,
                        every_s: float = 60.0) -> None:
    """Time-driven rule work (silent devices, escalation, released silences) once a minute."""
    while not stop.is_set():
        await rules.tick(time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def run_direct(settings: Settings, options: WorkerOptions) -> None:
    """The single-machine engine: one process subscribed to the MQTT broker, as before NATS."""
    from core.service import CoreService
    from forewarn.broker import EmbeddedBroker

    store = make_worker_store(settings, options, buffered=True)
    engine_db = connect(settings.cases.url)
    rules = RulesPipeline(load_rules(settings.cases.rules_file),
                          CaseBook(engine_db, channel="terminal", clock=time.time))
    pipeline = CorePipeline(make_detector(options.detector), store,
                            event_threshold=settings.core.event_threshold,
                            dedup_window=settings.core.dedup_window,
                            limits=configured_limits(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            mqtt = settings.mqtt
            if settings.broker.embedded:
                broker = await stack.enter_async_context(EmbeddedBroker(mqtt.host, mqtt.port))
                mqtt = mqtt.model_copy(update={"port": broker.port, "protocol": "3.1.1"})
            service = CoreService(mqtt, pipeline, rules.handle)
            tasks = [asyncio.create_task(service.run()),
                     asyncio.create_task(dispatch_outbox(settings, stop)),
                     asyncio.create_task(_tick_forever(rules, stop))]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        store.close()
        engine_db.dispose()
