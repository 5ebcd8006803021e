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

Time-driven rule work (devices gone silent, escalation, released silences) runs in every worker
for its own devices only: a device's partition is a pure function of its tenant and id
(:func:`device_partition`, the hash nats-server's subject transform applies), so a worker drops
the alarm states of other partitions' devices that it loaded from the shared case database, and
no two workers ever tick the same device. A worker ticks only up to the time its partitions are
caught up to (:class:`CaughtUp`): a backlog (a store outage, a machine back after hours) must
not make devices whose telemetry waits in the stream look silent.

>>> split_partitions(range(32), 3)
[range(0, 11), range(11, 21), range(21, 32)]
>>> parse_partitions("0-3,8")
[0, 1, 2, 3, 8]
>>> device_partition(NatsConfig(partitions=32), "acme", "hp-1")
21
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from core.config import MqttConfig
from core.detect import DetectorConfig
from core.heap import settle_heap
from core.nats import NatsConfig, NatsEngine, PartitionStats
from core.pipeline import CorePipeline
from core.service import CoreService
from core.store.base import HistoryStore, TimeSeriesStore
from edge.backoff import full_jitter
from edge.tasks import cancel_and_wait
from forewarn.casedb import open_case_db
from forewarn.errors import ConfigError
from forewarn.service import Service, tick_forever
from forewarn.settings import Settings
from rules.pipeline import RulesPipeline

__all__ = [
    "CaughtUp",
    "Supervisor",
    "WorkerOptions",
    "WorkerProcess",
    "device_partition",
    "dispatch_outbox",
    "forget_other_partitions",
    "leased_ownership",
    "make_service",
    "make_worker_store",
    "member_name",
    "parse_partitions",
    "run_supervised",
    "run_worker",
    "serve_until_stopped",
    "split_partitions",
    "supervised_partitions",
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


def device_partition(cfg: NatsConfig, tenant: str, device_id: str) -> int | None:
    """The partition the stream stores a device's telemetry in (None: a tenant it ignores).

    nats-server's ``partition(P, tokens…)`` transform hashes the concatenated subject tokens
    with 32-bit FNV-1a, modulo P; the tokens are the MQTT topic levels with ``.`` written as
    ``//``. With a literal tenant in the ingress subject only the device token is hashed.
    """
    tokens = cfg.ingress_subject.split(".")
    if tokens[2] == "*":
        key = _subject_token(tenant) + _subject_token(device_id)
    elif tokens[2] == _subject_token(tenant):
        key = _subject_token(device_id)
    else:
        return None
    digest = 0x811C9DC5
    for byte in key.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest % cfg.partitions


def _subject_token(level: str) -> str:
    """An MQTT topic level as nats-server's MQTT listener writes it into the subject."""
    return level.replace(".", "//")


def forget_other_partitions(rules: RulesPipeline, cfg: NatsConfig,
                            partitions: Sequence[int]) -> int:
    """Drop the alarm states of devices outside ``partitions``; returns how many went.

    A rules pipeline loads every state in the case database, and its tick walks all it holds:
    a worker holding another worker's device would judge it silent by a ``last_seen`` frozen
    at its own start and open a false "no data" case. A held (silenced) alarm of such a device
    is forgotten too: with no state behind it, the pipeline's next tick lets it go.
    """
    owned = set(partitions)
    foreign = [key for key in rules.evaluator.states
               if device_partition(cfg, key[1], key[2]) not in owned]
    for key in foreign:
        del rules.evaluator.states[key]
    # who said goodbye or left a last will is judged by the device's owner alone too
    return len(foreign) + rules.lifecycle.forget(
        lambda tenant, device_id: device_partition(cfg, tenant, device_id) not in owned)


class CaughtUp:
    """Up to when every owned partition's telemetry has reached the rules: the ticks' clock.

    A look asks JetStream for each partition's consumer. A partition with nothing undelivered
    and nothing in flight is through everything stored until the look; otherwise it is through
    what was stored until its last acknowledged message (the stream keeps a partition in order,
    so everything stored before that message has been processed too). The clock is the oldest
    of the partitions' marks; None until each partition has one. Behind (a store outage holds
    batches, a restarted machine drains hours of backlog, a worker busy compiling its kernels)
    the clock stays at the last message handled, so a device whose data still waits in the
    stream is not taken for silent; one that really went silent is found once the backlog is
    through.

    ``serving(partition)`` (a leased engine's :meth:`core.nats.NatsEngine.serving`) says
    whether this process consumes the partition now, under a lease it still trusts: a partition
    it does not serve has no mark, so its devices get no verdict here. A process that lost a
    lease without knowing yet (frozen past the lease term, then woken) would otherwise judge the
    partition's devices by the next owner's consumer — the same durable name, caught up — and by
    its own stale memory, which lacks the goodbyes the next owner has read since.
    """

    def __init__(self, js: JetStreamContext, cfg: NatsConfig, partitions: Sequence[int],
                 stats: Callable[[], Sequence[PartitionStats]],
                 per_partition: bool = False,
                 serving: Callable[[int], bool] | None = None) -> None:
        self.serving = serving
        #: :meth:`look` returns the newest mark and :meth:`device_clock` each device's own
        #: partition's: a lagging partition holds back only its own devices' ticks
        self.per_partition = per_partition
        self.js = js
        self.cfg = cfg
        #: kept as given, not copied: a leased engine's list changes while it runs
        self.partitions = partitions
        self.stats = stats
        self._through: dict[int, float] = {}

    async def look(self, now: float) -> float | None:
        """Ask about every partition at ``now`` (wall clock); return the ticks' clock."""
        stored_at = {s.partition: s.last_stored_at for s in self.stats()}
        owned = list(self.partitions)
        for partition in list(self._through):
            if partition not in owned:  # released: its new owner ticks its devices
                del self._through[partition]
        for partition in owned:
            if self.serving is not None and not self.serving(partition):
                self._through.pop(partition, None)
                continue
            try:
                info = await self.js.consumer_info(self.cfg.stream,
                                                   self.cfg.consumer_name(partition))
            except NotFoundError:
                continue  # not created yet: the worker is still starting
            if not info.num_pending and not info.num_ack_pending:
                self._through[partition] = now
            elif stored_at.get(partition, 0.0) > 0.0:
                self._through[partition] = max(self._through.get(partition, 0.0),
                                               stored_at[partition])
        if self.per_partition:
            return max(self._through.values(), default=None)
        if not owned or len(self._through) < len(owned):
            return None
        return min(self._through.values())

    def device_clock(self, tenant: str, device_id: str) -> float | None:
        """Up to when a device's partition is caught up (None: not owned, or no mark yet)."""
        partition = device_partition(self.cfg, tenant, device_id)
        if partition is None or (self.serving is not None and not self.serving(partition)):
            return None  # checked at the verdict, not only at the look: a lease may lapse
        return self._through.get(partition)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What one worker process needs besides the application settings."""

    nats: NatsConfig = field(default_factory=NatsConfig)
    #: InfluxDB (or VictoriaMetrics) URL; None: the embedded store of the settings
    influx_url: str | None = None
    influx_bucket: str = "forewarn"
    #: overrides ``[detector]`` (None: the settings' profile, the one the service runs)
    detector: DetectorConfig | None = None


def make_service(settings: Settings, options: WorkerOptions, echo: bool = True) -> Service:
    """The service's wiring (:class:`forewarn.service.Service`) with a worker's overrides."""
    influx = (None if options.influx_url is None
              else (options.influx_url, options.influx_bucket))
    return Service(settings, detector=options.detector, influx=influx, echo=echo)


def make_worker_store(settings: Settings, options: WorkerOptions,
                      buffered: bool = False) -> HistoryStore:
    """The store every partition writes to: ``--influx-url`` when given, else ``[store]``.

    NATS workers run without the outage buffer (the stream is the buffer); the direct engine
    keeps ``[store.buffer]`` when it is configured (``buffered=True``).
    """
    return make_service(settings, options).open_store(buffered)


def member_name() -> str:
    """This process's name among the lease holders: host, pid and a random tag.

    >>> re.fullmatch(r"[-_=a-zA-Z0-9]+", member_name()) is not None
    True
    """
    host = re.sub(r"[^-_=a-zA-Z0-9]", "_", socket.gethostname())
    return f"{host}-{os.getpid()}-{random.getrandbits(32):08x}"


def _adopt_states(rules: RulesPipeline, cfg: NatsConfig, partition: int) -> int:
    """Load from the case database the alarm states of one partition's devices, and who of
    them said goodbye or left a last will (on the rules thread, before the partition is
    consumed): the previous owner's last word."""
    def mine(tenant: str, device_id: str) -> bool:
        return device_partition(cfg, tenant, device_id) == partition

    rules.lifecycle.restore(mine)
    if rules.store is None:
        return 0
    states = {key: state for key, state in rules.store.load().items() if mine(key[1], key[2])}
    rules.evaluator.states.update(states)
    return len(states)


def _drop_states(rules: RulesPipeline, cfg: NatsConfig, partition: int) -> None:
    """Forget one partition's devices (after its worker stopped): its next owner ticks them."""
    for key in [k for k in rules.evaluator.states
                if device_partition(cfg, k[1], k[2]) == partition]:
        del rules.evaluator.states[key]
    rules.lifecycle.forget(
        lambda tenant, device_id: device_partition(cfg, tenant, device_id) == partition)


async def _on_rules_thread(rules: RulesPipeline, job: Callable[[], object]) -> None:
    await asyncio.get_running_loop().run_in_executor(rules._executor(), job)


async def run_worker(settings: Settings, options: WorkerOptions, partitions: Sequence[int],
                     ready_file: Path | None = None, leased: bool = False,
                     worker_index: int = 0) -> None:
    """One worker process: consume ``partitions`` until SIGTERM/SIGINT, then snapshot.

    With ``leased`` it ignores ``partitions`` and owns partitions by lease instead
    (:mod:`core.nats.lease`), loading and dropping its devices' alarm states as partitions
    come and go. Besides the stream it ticks the rules for its own devices every ``[core]
    tick_interval_s``, up to the time its partitions are caught up to.
    """
    from forewarn.core_metrics import CoreMetrics, worker_metrics_port

    service = make_service(settings, options)
    store = service.open_store(buffered=False)
    engine_db = await _connect_cases(settings.cases.url)
    metrics = CoreMetrics(engine_db) if settings.core.metrics_port else None
    if metrics is not None:
        store = metrics.timed_store(store)
    rules = service.rules_pipeline(engine_db)
    dropped = forget_other_partitions(rules, options.nats, [] if leased else partitions)
    _log.info("rules: %d alarm states of this worker's devices; %d states and lifecycle marks "
              "of others' dropped",
              len(rules.evaluator.states), dropped)

    def make_pipeline(handoff: TimeSeriesStore) -> CorePipeline:
        pipeline = service.core_pipeline(handoff, engine_db)
        return pipeline if metrics is None else metrics.attach_pipeline(pipeline)

    cfg = options.nats

    async def acquired(partition: int) -> None:
        await _on_rules_thread(rules, lambda: _adopt_states(rules, cfg, partition))

    async def released(partition: int) -> None:
        await _on_rules_thread(rules, lambda: _drop_states(rules, cfg, partition))

    try:
        async with NatsEngine(options.nats, [] if leased else partitions, make_pipeline, store,
                              rules.handle_in_thread,
                              lifecycle=service.lifecycle_sink(rules),
                              member=member_name() if leased else None,
                              on_acquired=acquired, on_released=released) as engine:
            partitions = engine.partitions  # live under leases
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, engine.stop)
            runner = asyncio.create_task(engine.run())
            orphan_watch = asyncio.create_task(_stop_when_orphaned(engine.stop))
            await engine.ready.wait()
            assert engine.monitor is not None  # set on entering the engine
            caught_up = CaughtUp(engine.monitor.js, options.nats, partitions, engine.stats,
                                 per_partition=True,
                                 serving=engine.serving if leased else None)
            rules.device_clock = caught_up.device_clock
            metrics_served = contextlib.AsyncExitStack()
            if metrics is not None:
                metrics.partition_stats = engine.stats
                metrics.stream_monitor = engine.monitor
                metrics.partition_missing = engine.missing
                if engine.peers is not None:
                    metrics.peer_board = engine.peers.board.stats
                lag_watch = asyncio.create_task(metrics.watch_partitions(
                    engine.monitor.js, options.nats, partitions))
                metrics_served.callback(lag_watch.cancel)
                port = (settings.core.metrics_port + 1 + worker_index if leased
                        else worker_metrics_port(settings.core.metrics_port, _owned(settings),
                                                 settings.core.workers, partitions))
                await metrics_served.enter_async_context(metrics.serving(
                    settings.core.metrics_host, port))
            ticks_done = asyncio.Event()
            ticker = asyncio.create_task(service.tick_forever(
                rules, ticks_done, clock=lambda: caught_up.look(time.time())))
            if ready_file is not None:
                ready_file.write_text(f"{time.time()}\n")
            _log.info("worker ready: %s", f"member {engine.member}, partitions by lease"
                      if leased else f"partitions {list(partitions)}")
            try:
                await runner
            finally:
                ticks_done.set()
                await ticker
                orphan_watch.cancel()
                await metrics_served.aclose()
        _log.info("worker stopped: partitions %s", list(partitions))
    finally:
        store.close()
        engine_db.dispose()


def _owned(settings: Settings) -> list[int]:
    """The partitions this machine's workers share (``[core] owned_partitions`` or all)."""
    owned = settings.core.owned_partitions
    return parse_partitions(owned) if owned else list(range(settings.nats.partitions))


async def _connect_cases(url: str, attempts: int = 5,
                         rng: random.Random | None = None) -> Engine:
    """The case database; workers starting together race to create its tables, so retry."""
    rng = rng or random.Random()
    for attempt in range(attempts):
        try:
            return open_case_db(url)
        except ConfigError as exc:
            if attempt == attempts - 1 or not isinstance(exc.__cause__, OperationalError):
                raise
            await asyncio.sleep(rng.uniform(0.05, 0.5))
    raise AssertionError("unreachable")


async def _stop_when_orphaned(stop: Callable[[], None]) -> None:
    """Stop a supervised worker whose supervisor died (its parent becomes someone else)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    _log.warning("supervisor %d is gone; stopping", parent)
    stop()


async def dispatch_outbox(settings: Settings, stop: asyncio.Event, echo: bool = True) -> None:
    """The one outbox dispatcher: delivers pending notices on every configured channel until
    ``stop`` is set."""
    await Service(settings, echo=echo).dispatch(stop)


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

    ``worker_argv`` is the command line of a worker, to which ``--own 0-15`` is appended
    (``--own lease:<index>`` with ``leased``: the workers then share every partition of the
    stream with the other machines' workers by lease, and a restarted worker takes its share
    again) (the
    CLI passes ``forewarn core --engine nats --settings-stdin ...``). ``settings_json``, when
    given, is written to every worker's standard input at every start: the configuration the
    supervisor resolved once, so a restarted worker cannot read a file edited meanwhile.
    """

    def __init__(self, partitions: Sequence[int], workers: int,
                 worker_argv: list[str], restart_delay_s: float = 0.2,
                 settings_json: bytes | None = None, leased: bool = False) -> None:
        #: workers own partitions by lease (``--own lease:<index>``), not by slice
        self.leased = leased
        self.worker_argv = worker_argv
        self.restart_delay_s = restart_delay_s
        self.settings_json = settings_json
        self.workers = [WorkerProcess(i, part)
                        for i, part in enumerate(split_partitions(partitions, workers))]
        self._stopping = asyncio.Event()
        self._reaper: asyncio.TimerHandle | None = None

    async def _start(self, worker: WorkerProcess) -> None:
        own = (f"lease:{worker.index}" if self.leased
               else ",".join(str(p) for p in worker.partitions))
        worker.process = await asyncio.create_subprocess_exec(
            *self.worker_argv, "--own", own,
            stdin=asyncio.subprocess.PIPE if self.settings_json is not None else None)
        worker.started_at = time.monotonic()
        stdin = worker.process.stdin
        if stdin is not None and self.settings_json is not None:
            # a worker that died at once shows in its exit code, not here
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.write(self.settings_json)
                await stdin.drain()
            stdin.close()
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


#: the rules' ticks (kept under this name for the callers of the NATS engine)
_tick_forever = tick_forever


async def serve_until_stopped(stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]) -> int:
    """Wait for ``stop`` or for any of a service's ``tasks`` to end; cancel the rest.

    A task that ends on its own is a dead service (an ingest loop that returned or raised):
    it is logged as an error and the exit code is 1, so the service manager (systemd's
    ``Restart=on-failure``) starts a fresh process instead of leaving one that ingests nothing.
    Returns 0 when ``stop`` came first, or when ``stop`` is set and the tasks that ended with
    it ended without an error.
    """
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    dead = [task for task in tasks if task.done()]
    if stop.is_set():
        # a task that watches ``stop`` itself (the outbox, the rules tick) may end in the
        # same loop turn as ``stopping``: that is the asked-for shutdown, not a dead service
        dead = [task for task in dead if not task.cancelled() and task.exception() is not None]
    for task in dead:
        exc = None if task.cancelled() else task.exception()
        _log.error("core's %s task stopped: %s; exiting", task.get_name(),
                   "without an error" if exc is None else repr(exc), exc_info=exc)
    # one cancellation may be swallowed (Python 3.11's wait_for in aiomqtt): edge.tasks
    await cancel_and_wait([stopping, *tasks])
    return 1 if dead else 0


async def run_direct(settings: Settings, options: WorkerOptions, echo: bool = True,
                     say: Callable[[str], None] = lambda _: None) -> int:
    """The single-machine engine: one process subscribed to the MQTT broker, as before NATS.

    Returns the exit code: 0 after SIGTERM/SIGINT, 1 when a task of the service died.
    ``say`` gets what it runs with and where it is connected, one line each.
    """
    from forewarn.broker import EmbeddedBroker
    from forewarn.core_metrics import CoreMetrics
    from forewarn.core_state import KeptState

    service = make_service(settings, options, echo=echo)
    for line in service.describe():
        say(line)
    store = service.open_store(buffered=True)
    engine_db = service.connect_cases()
    metrics = CoreMetrics(engine_db) if settings.core.metrics_port else None
    if metrics is not None:
        store = metrics.timed_store(store)
    rules = service.rules_pipeline(engine_db)
    pipeline = service.core_pipeline(store, engine_db)
    if metrics is not None:
        metrics.attach_pipeline(pipeline)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    code = 1
    try:
        async with contextlib.AsyncExitStack() as stack:
            # restores detector and dedup state; snapshots it periodically and on the way out
            kept = await stack.enter_async_context(KeptState(settings.core, pipeline))
            settle_heap()  # started: a backlog's messages must not make every GC walk it all
            if metrics is not None:
                await stack.enter_async_context(metrics.serving(
                    settings.core.metrics_host, settings.core.metrics_port))
            mqtt = settings.mqtt
            if settings.broker.embedded:
                broker = await stack.enter_async_context(EmbeddedBroker(mqtt.host, mqtt.port))
                mqtt = mqtt.model_copy(update={"port": broker.port, "protocol": "3.1.1"})
            core = CoreService(mqtt, pipeline, rules.handle_in_thread, on_handled=kept.commit)
            # the mapped fleets' own topics (``[[ingest.mapping]]``), beside the native one
            core.ingestor.extra_subscriptions = tuple(
                dict.fromkeys(m.pattern.subscription for m in settings.ingest.mapping))
            # status, agent events and reported configs: the device lifecycle (issue 16.3)
            lifecycle = service.lifecycle_listener(mqtt, rules, pipeline)
            if settings.core.ingest_http_port:  # POST /api/v1/ingest/{mapping} (issue 22)
                from forewarn.auth import TokenStore
                from forewarn.ingest_http import PATH_PREFIX, IngestHttp

                host, port = settings.core.ingest_http_host, settings.core.ingest_http_port
                await stack.enter_async_context(IngestHttp(
                    pipeline, settings.ingest.mapping, TokenStore(engine_db),
                    rules.handle_in_thread, on_handled=kept.commit,
                    max_body_bytes=settings.core.ingest_http_max_body_bytes).serving(host, port))
                say(f"HTTP ingest on http://{host}:{port}{PATH_PREFIX}{{mapping}}")
            tasks = [asyncio.create_task(core.run(), name="ingest"),
                     asyncio.create_task(lifecycle.run(), name="lifecycle"),
                     asyncio.create_task(service.dispatch(stop), name="outbox"),
                     asyncio.create_task(service.tick_forever(rules, stop), name="rules tick")]
            greeting = asyncio.create_task(_say_when_connected(core, mqtt, say))
            code = await serve_until_stopped(stop, tasks)
            greeting.cancel()
    finally:
        store.close()
        engine_db.dispose()
    return code


async def _say_when_connected(core: CoreService, mqtt: MqttConfig,
                              say: Callable[[str], None]) -> None:
    await core.ingestor.connected.wait()
    say(f"connected to mqtt://{mqtt.host}:{mqtt.port} as {mqtt.client_id}")
    say(f"subscribed to {', '.join((mqtt.subscription, *core.ingestor.extra_subscriptions))}")


async def _keep_bridging(run: Callable[[], Awaitable[None]],
                         rng: random.Random | None = None) -> None:
    """Run the ingest bridge; a crash of it is logged and it starts again (its messages are
    unacknowledged at the broker, which sends them again)."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            await run()
        except Exception:
            _log.exception("ingest bridge failed; restarting it")
        attempt += 1
        await asyncio.sleep(full_jitter(attempt, 0.5, 30.0, rng))


def leased_ownership(settings: Settings) -> bool:
    """Whether the workers own partitions by lease: ``[nats] ownership = "lease"`` (the
    default) and no static ``[core] owned_partitions``."""
    return settings.nats.ownership == "lease" and not settings.core.owned_partitions


def supervised_partitions(settings: Settings) -> list[int]:
    """The partitions this machine's workers share; :class:`ConfigError` when they are not all
    in the stream or there are fewer of them than workers."""
    stream_partitions = settings.nats.partitions
    partitions = _owned(settings)
    if not partitions or partitions[-1] >= stream_partitions:
        raise ConfigError(f"owned partitions {settings.core.owned_partitions!r} are not all "
                          f"below the stream's {stream_partitions} partitions")
    if settings.core.workers > len(partitions):
        raise ConfigError(f"{settings.core.workers} workers for {len(partitions)} partitions: "
                          "a worker needs at least one")
    return partitions


async def run_supervised(settings: Settings, partitions: list[int], worker_argv: list[str],
                         echo: bool = True) -> None:
    """``forewarn core --engine nats``: supervise the worker processes (each started with
    ``worker_argv`` and the settings on its stdin) until SIGTERM or SIGINT; with
    ``[core] outbox`` deliver the notices here, and serve ``/metrics`` when a port is set."""
    if settings.core.ingest_http_port:
        _log.warning("[core] ingest_http_port is ignored by the nats engine: HTTP ingest runs "
                     "on the direct engine (docs/connect.md)")
    supervisor = Supervisor(partitions, settings.core.workers, worker_argv,
                            settings_json=settings.model_dump_json().encode(),
                            leased=leased_ownership(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        stop.set()
        supervisor.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown)
    outbox = None if not settings.core.outbox else asyncio.create_task(
        dispatch_outbox(settings, stop, echo=echo))
    async with contextlib.AsyncExitStack() as stack:
        cases: Engine | None = None
        if settings.core.metrics_port or settings.nats.bridge:
            cases = open_case_db(settings.cases.url)
            stack.callback(cases.dispose)
        bridge = None
        if settings.nats.bridge:  # broker → stream, with back-pressure (docs/scaling.md)
            from forewarn.ingest_bridge import make_bridge

            assert cases is not None
            bridge = await stack.enter_async_context(make_bridge(settings, cases))
            bridging = asyncio.create_task(_keep_bridging(bridge.run), name="ingest bridge")
            stack.push_async_callback(cancel_and_wait, [bridging])
        else:
            # off by default: devices may reach the stream straight through nats-server's
            # MQTT listener, where a bridge subscribed through [mqtt] would put every message
            # back into the stream, in a loop
            _log.info("ingest bridge off ([nats] bridge): nothing holds devices back when the "
                      "stream fills; what it discards unread is counted per device by the "
                      "workers (forewarn_partition_gap_batches_total), not prevented")
        if settings.core.metrics_port:  # the outbox, cases and bridge; workers serve their own
            from forewarn.core_metrics import CoreMetrics

            assert cases is not None
            metrics = CoreMetrics(cases)
            metrics.bridge = bridge
            await stack.enter_async_context(metrics.serving(
                settings.core.metrics_host, settings.core.metrics_port))
        await supervisor.run()
    stop.set()
    if outbox is not None:
        await outbox
