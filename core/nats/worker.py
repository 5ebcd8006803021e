"""JetStream workers: one task per owned partition, one process per set of partitions.

A :class:`PartitionWorker` owns one partition. On start it restores the partition's snapshot
into a fresh pipeline and recreates the partition's durable pull consumer so that it delivers
from the snapshot's stream sequence + 1 (the whole stream when there is none): the detector
relearns exactly what the previous owner had learned after its last snapshot. Then it loops:

1. fetch up to ``fetch_batch`` messages (the consumer's ``max_ack_pending`` is that same
   number, so one batch is in flight per partition and nothing overtakes it) with a
   :class:`~core.nats.fetch.BatchFetcher`;
2. decode, dedup and detect each telemetry message with the partition's :class:`CorePipeline`,
   whose store is a hand-off list, not the real store; decode each lifecycle message (status,
   agent event, reported config) with :func:`core.lifecycle.decode_lifecycle`, the direct
   engine's decoder, dated by when the stream stored it; a message it cannot use is
   dead-lettered and the dead letters are persisted (when the pipeline has a store for them);
3. write the batch's scored batches to the real store, retrying with full-jitter backoff for as
   long as the store is down (telling JetStream the messages are in progress meanwhile);
4. hand every scored batch to the sink and every lifecycle event to the lifecycle sink (the
   rules pipeline), in the order the stream holds them: a goodbye after a device's last batch
   is handled after that batch;
5. acknowledge the last message (ack policy *all* covers the batch) and wait for the server
   to confirm; every ``snapshot_interval_s`` save a snapshot with that message's sequence.

The partitions' peer detectors (``[peer]``) judge their devices over every partition's
members of a time bucket: with ``peer_share`` the engine's :class:`~core.nats.peers.PeerExchange`
carries each partition's summaries to every process, and the engine judges a partition's waiting
buckets as soon as the others' arrive (:mod:`core.detect.peer_share`).

A crash anywhere before 5 leaves the batch unacknowledged, and the next owner replays it; the
store (samples keyed by device and time), the case book (open cases keyed by device and rule)
and the outbox (notices keyed by idempotency key) make the replay change nothing.

:class:`NatsEngine` is one worker process: it connects, makes sure the stream exists and runs
a partition worker per partition it owns. With ``member`` set it owns partitions by lease
(:mod:`core.nats.lease`): it takes, renews and releases them while it runs, and each partition
worker checks its lease (the fence) before every acknowledgement and snapshot. Without it, the
process consumes the static slice it was given. Usage::

    async with NatsEngine(cfg, partitions=range(0, 16), make_pipeline=factory,
                          store=store, sink=rules.handle_in_thread,
                          lifecycle=rules.handle_lifecycle_in_thread) as engine:
        await engine.run()            # until engine.stop() or cancellation
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from core.events import EventSink, LifecycleEvent, LifecycleSink, ScoredBatch
from core.lifecycle import decode_lifecycle
from core.nats.backpressure import DeviceLedger
from core.nats.config import NatsConfig
from core.nats.fetch import BatchFetcher
from core.nats.lease import Lease, LeaseKeeper, open_lease_bucket
from core.nats.peers import PeerExchange
from core.nats.snapshot import Snapshot, SnapshotStore
from core.nats.stream import StreamMonitor, ensure_stream, topic_of_subject
from core.pipeline import CorePipeline
from core.store.base import HistoryStore, SeriesFrame, StoreError, TimeSeriesStore
from edge.backoff import full_jitter
from edge.tasks import cancel_and_wait

__all__ = ["HandOff", "NatsEngine", "PartitionStats", "PartitionWorker", "PipelineFactory"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: builds a partition's pipeline around the store it is given (the engine's hand-off list)
PipelineFactory = Callable[[TimeSeriesStore], CorePipeline]


class HandOff:
    """The pipeline's store inside a worker: it only collects, the worker writes for real.

    >>> handoff = HandOff()
    >>> handoff.take()
    []
    """

    def __init__(self) -> None:
        self._batches: list[ScoredBatch] = []

    def write(self, batch: ScoredBatch) -> None:
        """Keep ``batch`` until :meth:`take`."""
        self._batches.append(batch)

    def __len__(self) -> int:
        return len(self._batches)

    def take(self) -> list[ScoredBatch]:
        """What was written since the last call."""
        batches, self._batches = self._batches, []
        return batches

    def read(self, tenant: str, device_id: str, start: float, stop: float,
             every_s: float = 0.0) -> SeriesFrame:
        """Not readable: the worker's real store is."""
        raise StoreError("the hand-off list keeps no history")

    def count_samples(self, tenant: str | None = None) -> int:
        """Not countable: the worker's real store is."""
        raise StoreError("the hand-off list keeps no history")

    def close(self) -> None:
        """Nothing to release."""


@dataclass(slots=True)
class PartitionStats:
    """What one partition worker did."""

    partition: int
    restored_seq: int = 0
    last_seq: int = 0
    #: when the stream stored the last acknowledged message (epoch s; 0: none yet): every
    #: message of the partition stored before it has been processed
    last_stored_at: float = 0.0
    fetches: int = 0
    messages: int = 0
    #: lifecycle messages (status, agent event, reported config) among ``messages``
    lifecycle: int = 0
    store_retries: int = 0
    sink_retries: int = 0
    ack_retries: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0


class PartitionWorker:
    """Owns one partition: restore, replay, then fetch → process → store → sink → ack."""

    def __init__(
        self,
        partition: int,
        nc: Client,
        js: JetStreamContext,
        cfg: NatsConfig,
        make_pipeline: PipelineFactory,
        store: HistoryStore,
        sink: EventSink,
        snapshots: SnapshotStore,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        fence: Callable[[], bool] | None = None,
        lifecycle: LifecycleSink | None = None,
        missing: dict[tuple[str, str], int] | None = None,
        peers: PeerExchange | None = None,
    ) -> None:
        self.partition = partition
        #: (tenant, device) → batches missing from its sequence when this partition was read
        #: (the engine's tally over every partition it ever owned): what a full stream
        #: discarded before anyone read it, or what was lost before the stream
        self.missing: dict[tuple[str, str], int] = {} if missing is None else missing
        self._sequences = DeviceLedger()
        #: where the devices' lifecycle events go (None: they are counted and dropped)
        self.lifecycle = lifecycle
        #: whether this process still owns the partition (its lease); None: static ownership
        self.fence = fence
        self._rng = rng or random.Random()
        self.nc = nc
        self.js = js
        self.cfg = cfg
        self.handoff = HandOff()
        self.pipeline = make_pipeline(self.handoff)
        # every batch the dedup accepts, in stream order: its sequence is checked for holes
        self.pipeline.dedup.accepted = []
        if peers is not None and self.pipeline.peer is not None:
            # peer groups span partitions: this partition's devices are judged over every
            # partition's members of a bucket (core.detect.peer_share)
            self.pipeline.peer.share = peers.board.share_for(partition)
        self.store = store
        self.sink = sink
        self.snapshots = snapshots
        self.clock = clock
        self.stats = PartitionStats(partition)
        self._fetcher: BatchFetcher | None = None
        #: held from taking the hand-off list to handing it on: peer judgments made between
        #: messages (:meth:`hand_on_judged`) go after the batch in hand, never inside it
        self._handing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._last_snapshot = clock()
        self._snapshot_seq = 0
        #: restored, and its own consumer made (until then the durable of that name may still
        #: be the previous owner's)
        self.consuming = False

    async def start(self) -> None:
        """Restore the snapshot and point the durable consumer just after it."""
        snapshot = await self.snapshots.load(self.partition)
        if snapshot is not None:
            self.pipeline.load_state(snapshot.state)
            self.stats.restored_seq = self._snapshot_seq = snapshot.stream_seq
            # each device's last batch as of the snapshot: a hole right after it (what the
            # stream discarded while nobody read the partition) counts as missing too
            for (tenant, device_id, boot), (floor, seen) in \
                    self.pipeline.dedup.state().items():  # least recent boot first
                self._sequences.forwarded(tenant, device_id, boot, max(seen, default=floor))
        name = self.cfg.consumer_name(self.partition)
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(self.cfg.stream, name)
        await self.js.add_consumer(self.cfg.stream, ConsumerConfig(
            durable_name=name,
            filter_subject=self.cfg.partition_subject(self.partition),
            deliver_policy=(DeliverPolicy.BY_START_SEQUENCE if snapshot is not None
                            else DeliverPolicy.ALL),
            opt_start_seq=snapshot.stream_seq + 1 if snapshot is not None else None,
            ack_policy=AckPolicy.ALL,
            # one batch in flight: a wider window lets a later batch be acknowledged (and so
            # a crash skip) before an earlier one is stored
            max_ack_pending=self.cfg.fetch_batch,
            ack_wait=self.cfg.ack_wait_s,
            max_deliver=-1,
        ))
        if self._fetcher is not None:
            await self._fetcher.close()
        self._fetcher = BatchFetcher(self.nc, self.cfg.stream, name)
        await self._fetcher.start()
        self.consuming = True
        _log.info("partition %d: restored at stream seq %d", self.partition,
                  self.stats.restored_seq)

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; a last snapshot is saved on the way out."""
        if self._fetcher is None:
            await self.start()
        assert self._fetcher is not None
        failures = 0
        while not self._stopping.is_set():
            try:
                msgs = await self._fetcher.fetch(self.cfg.fetch_batch, self.cfg.fetch_timeout_s)
            except nats.errors.Error as exc:  # disconnected: the client reconnects by itself
                failures += 1
                _log.warning("partition %d: fetch failed (%s)", self.partition, exc)
                await asyncio.sleep(self._retry_delay(failures))
                continue
            failures = 0
            await self.process(msgs)
            await self._maybe_snapshot()
        _log.info("partition %d: stopped at stream seq %d", self.partition,
                  self.stats.last_seq)
        await self._fetcher.close()
        try:
            await asyncio.wait_for(self.snapshot(), 10.0)
        except (TimeoutError, nats.errors.Error) as exc:
            # the previous snapshot stays; the next owner replays a little more
            _log.warning("partition %d: last snapshot not saved (%s)", self.partition, exc)

    async def process(self, msgs: Sequence[Msg]) -> None:
        """One fetched batch, from decoding to the confirmed acknowledgement."""
        if not msgs:
            return
        self.stats.fetches += 1
        #: lifecycle events, each with the number of scored batches that came before it
        events: list[tuple[int, LifecycleEvent]] = []
        for msg in msgs:
            topic = topic_of_subject(msg.subject, self.cfg)
            if not topic.endswith("/telemetry"):
                self._lifecycle_message(topic, msg, events)
                continue
            try:
                self.pipeline.process_payload(topic, msg.data)
            except Exception as exc:
                # a message that crashes the pipeline would crash every owner after this one
                # too (replay): dead-letter it and keep the partition moving
                _log.exception("partition %d: pipeline failed on a message of %s",
                               self.partition, topic)
                self.pipeline.dead_letters.record("crash", topic, repr(exc), msg.data)
        self._count_missing()
        # persisted before the acknowledgement (a failing database is logged and retried at
        # the next flush, it does not hold the partition)
        self.pipeline.dead_letters.flush()
        async with self._handing:
            await self._hand_on_batch(msgs, events)

    async def _hand_on_batch(self, msgs: Sequence[Msg],
                             events: list[tuple[int, LifecycleEvent]]) -> None:
        scored = self.handoff.take()
        if scored and not await self._retry(lambda: self._write(scored), msgs, "store"):
            return
        # the fence once per batch before its effects downstream, and before every retry: not
        # per message (a lease lost halfway leaves the rest to the next owner's replay, which
        # the case book and the device table take as repeats)
        if not self._owner():
            return
        for item in _in_stream_order(scored, events):
            try:
                await self._hand_on(item)
                continue
            except Exception as exc:  # foreign code, or its database away: keep the data
                self.stats.sink_retries += 1
                _log.warning("partition %d: sink failed (%s); retrying, batch held",
                             self.partition, exc)
            if not await self._retry(lambda i=item: self._hand_on(i),  # type: ignore[misc]
                                     msgs, "sink"):
                return
        # an acknowledgement lost to a broken connection would stall the partition until
        # ack_wait; acknowledging again is harmless. The fence is checked before each attempt.
        if not await self._retry(lambda: self._ack(msgs[-1]), msgs, "ack"):
            return
        self.stats.messages += len(msgs)
        meta = msgs[-1].metadata
        self.stats.last_seq = meta.sequence.stream
        self.stats.last_stored_at = meta.timestamp.timestamp()

    async def hand_on_judged(self) -> None:
        """Hand on what the pipeline wrote between messages (the onsets of peer buckets
        judged when the other partitions' summaries arrived): to the store and the sink,
        retried like a batch's. Nothing is acknowledged: a crash before the next snapshot
        judges those buckets again on replay (the sinks take repeats)."""
        async with self._handing:
            scored = self.handoff.take()
            if not scored or not self._owner():
                return
            if not await self._retry(lambda: self._write(scored), (), "store"):
                return
            for item in scored:
                if not await self._retry(lambda i=item: self.sink(i),  # type: ignore[misc]
                                         (), "sink"):
                    return

    def _count_missing(self) -> None:
        """Holes in the devices' batch sequences among the batches just accepted."""
        accepted = self.pipeline.dedup.accepted
        if not accepted:
            return
        ledger, holes = self._sequences, 0
        for tenant, device_id, boot, seq in accepted:
            counts = ledger.devices.get((tenant, device_id))
            before = 0 if counts is None else counts.gaps
            ledger.forwarded(tenant, device_id, boot, seq)
            added = ledger.devices[(tenant, device_id)].gaps - before
            if added:
                holes += added
                self.missing[(tenant, device_id)] = self.missing.get(
                    (tenant, device_id), 0) + added
                _log.warning("partition %d: %d batches of %s/%s missing before boot %s seq "
                             "%d (discarded unread by a full stream, or lost before it)",
                             self.partition, added, tenant, device_id, boot, seq)
        accepted.clear()

    def _lifecycle_message(self, topic: str, msg: Msg,
                           events: list[tuple[int, LifecycleEvent]]) -> None:
        """Decode one status, agent event or config report; keep it for the lifecycle sink.

        Dated by when the stream stored it (a last will happened when it arrived): a
        redelivery or a replay by the next owner gives the same event.
        """
        self.stats.lifecycle += 1
        if self.lifecycle is None:
            return
        stored_at = msg.metadata.timestamp.timestamp()
        event = decode_lifecycle(topic, msg.data, None, arrival=stored_at,
                                 dead_letters=self.pipeline.dead_letters)
        if event is not None:
            events.append((len(self.handoff), event))

    async def _hand_on(self, item: ScoredBatch | LifecycleEvent) -> None:
        if isinstance(item, ScoredBatch):
            await self.sink(item)
        else:
            assert self.lifecycle is not None  # events are only kept for a sink
            await self.lifecycle(item)

    def trusted(self) -> bool:
        """Whether this process may still act for the partition (its lease, if any)."""
        return self.fence is None or self.fence()

    def _owner(self) -> bool:
        """The fence: False (and the worker stops) once the lease can no longer be trusted;
        the batch stays unacknowledged for the next owner."""
        if self.fence is None or self.fence():
            return True
        if not self._stopping.is_set():
            _log.error("partition %d: lease no longer valid; stopping without acknowledging",
                       self.partition)
        self._stopping.set()
        return False

    async def _ack(self, msg: Msg) -> None:
        await msg.ack_sync(timeout=10.0)

    async def _write(self, scored: list[ScoredBatch]) -> None:
        self.store.write_many(scored)

    async def _retry(self, attempt: Callable[[], Awaitable[None]], msgs: Sequence[Msg],
                     what: str) -> bool:
        """Until ``attempt`` succeeds (True), or the lease is gone (False: give the batch up
        unacknowledged; the next owner has it)."""
        failures = 0
        last_progress = self.clock()
        while True:
            if not self._owner():
                return False
            if failures and self._stopping.is_set():
                # asked to stop while a batch is held: give it up unacknowledged (JetStream
                # redelivers it to whoever consumes the partition next) rather than retry on
                _log.warning("partition %d: stopping with a %s retry pending; batch left "
                             "unacknowledged", self.partition, what)
                return False
            try:
                await attempt()
                return True
            except Exception as exc:  # store errors, and the sink is foreign code: keep the data
                failures += 1
                if what == "store":
                    self.stats.store_retries += 1
                elif what == "sink":
                    self.stats.sink_retries += 1
                else:
                    self.stats.ack_retries += 1
                if failures == 1 or failures % 20 == 0:
                    _log.warning("partition %d: %s failed (%s); retrying, batch held",
                                 self.partition, what, exc)
            if self.clock() - last_progress > self.cfg.ack_wait_s / 3:
                # keep JetStream from redelivering what this owner still holds
                with contextlib.suppress(nats.errors.Error):
                    for msg in msgs:
                        await msg.in_progress()
                last_progress = self.clock()
            await asyncio.sleep(self._retry_delay(failures))

    def _retry_delay(self, failures: int) -> float:
        return full_jitter(min(failures, 16), 0.05, self.cfg.store_retry_max_s, self._rng)

    async def _maybe_snapshot(self) -> None:
        if self.clock() - self._last_snapshot >= self.cfg.snapshot_interval_s:
            await self.snapshot()

    async def snapshot(self) -> None:
        """Save the state as of the last acknowledged message (if anything changed)."""
        self._last_snapshot = self.clock()
        if self.stats.last_seq <= self._snapshot_seq or not self._owner():
            return
        size = await self.snapshots.save(Snapshot(
            self.partition, self.stats.last_seq, time.time(), self.pipeline.state()))
        self._snapshot_seq = self.stats.last_seq
        self.stats.snapshots += 1
        self.stats.snapshot_bytes = size


def _in_stream_order(scored: list[ScoredBatch], events: list[tuple[int, LifecycleEvent]]
                     ) -> list[ScoredBatch | LifecycleEvent]:
    """Scored batches and lifecycle events interleaved as their messages were in the stream.

    >>> from core.events import ConfigReported
    >>> event = ConfigReported("acme", "hp-1", "applied", 1, ())
    >>> _in_stream_order(["b0", "b1"], [(1, event)])  # doctest: +ELLIPSIS
    ['b0', ConfigReported(...), 'b1']
    """
    if not events:
        return list(scored)
    ordered: list[ScoredBatch | LifecycleEvent] = []
    start = 0
    for position, event in events:
        ordered.extend(scored[start:position])
        ordered.append(event)
        start = position
    ordered.extend(scored[start:])
    return ordered


class NatsEngine:
    """One worker process's JetStream side: connection, stream, and its partitions' workers."""

    def __init__(
        self,
        cfg: NatsConfig,
        partitions: Sequence[int],
        make_pipeline: PipelineFactory,
        store: HistoryStore,
        sink: EventSink,
        monitor_interval_s: float = 30.0,
        member: str | None = None,
        on_acquired: Callable[[int], Awaitable[None]] | None = None,
        on_released: Callable[[int], Awaitable[None]] | None = None,
        lifecycle: LifecycleSink | None = None,
    ) -> None:
        self.cfg = cfg
        #: where the devices' status, agent events and reported configs go (None: dropped)
        self.lifecycle = lifecycle
        #: the partitions consumed now (a live list: leases add and remove while running)
        self.partitions = list(partitions)
        #: this process's name among the lease holders; None: static ownership
        self.member = member
        self.on_acquired = on_acquired
        self.on_released = on_released
        self.leases: LeaseKeeper | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._by_partition: dict[int, PartitionWorker] = {}
        #: (tenant, device) → batches missing from its sequence, over every partition read
        self.missing: dict[tuple[str, str], int] = {}
        self._stopping = asyncio.Event()
        self._snapshots: SnapshotStore | None = None
        self.make_pipeline = make_pipeline
        self.store = store
        self.sink = sink
        self.monitor_interval_s = monitor_interval_s
        self.workers: list[PartitionWorker] = []
        self.ready = asyncio.Event()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.monitor: StreamMonitor | None = None
        #: every partition's peer summaries (``peer_share``); None until entered, or off
        self.peers: PeerExchange | None = None
        self._peer_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NatsEngine:
        self._nc = await nats.connect(self.cfg.url, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5, name="forewarn-core")
        self._js = self._nc.jetstream(timeout=10.0)
        await ensure_stream(self._js, self.cfg)
        snapshots = SnapshotStore(self._js, self.cfg.snapshot_bucket, self.cfg.replicas)
        self._snapshots = snapshots
        self.monitor = StreamMonitor(self._js, self.cfg)
        if self.cfg.peer_share:
            self.peers = PeerExchange(self._js, self.cfg)
            await self.peers.start()
            self._peer_task = asyncio.create_task(self._judge_peers(), name="peer-judging")
        if self.member is not None:
            kv = await open_lease_bucket(self._js, self.cfg.lease_bucket, self.cfg.lease_ttl_s,
                                         self.cfg.replicas)
            self.leases = LeaseKeeper(kv, self.member, self.cfg.partitions,
                                      self.cfg.lease_ttl_s, self._acquire, self._release,
                                      max_moves=self.cfg.lease_max_moves)
            self.partitions.clear()
        self.workers = [
            PartitionWorker(p, self._nc, self._js, self.cfg, self.make_pipeline, self.store,
                            self.sink, snapshots, lifecycle=self.lifecycle,
                            missing=self.missing, peers=self.peers)
            for p in self.partitions
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._peer_task is not None:
            await cancel_and_wait([self._peer_task])
        if self.peers is not None:
            await self.peers.close()
        if self._nc is not None:
            nc, self._nc = self._nc, None
            try:
                await asyncio.wait_for(nc.close(), 5.0)
            except TimeoutError:  # everything is acknowledged or will be redelivered anyway
                _log.warning("NATS connection did not close within 5 s; leaving it")

    async def _judge_peers(self) -> None:
        """Judge the partitions' waiting peer buckets whenever a summary arrives (or one's
        lateness bound may have passed), not only when their own next message comes: a
        bucket's judging waits on every partition, each of which publishes its next bucket
        only once it judged the one before."""
        assert self.peers is not None
        every = max(min(self.cfg.peer_wait_s / 4, 1.0), 0.05)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.peers.arrived.wait(), every)
            self.peers.arrived.clear()
            for worker in list(self.workers):
                peer = worker.pipeline.peer
                if peer is None or not worker.consuming or not worker.trusted():
                    continue
                try:
                    if worker.pipeline.judge_peers():
                        await worker.hand_on_judged()
                except Exception:  # a bug here must not end the judging of every partition
                    _log.exception("partition %d: judging peer buckets failed",
                                   worker.partition)

    def stop(self) -> None:
        """Ask every partition worker to finish its batch and snapshot."""
        self._stopping.set()
        for worker in self.workers:
            worker.stop()

    def serving(self, partition: int) -> bool:
        """Whether this process consumes ``partition`` now: under leases, restored and with a
        lease it still trusts (the same fence as its acknowledgements); static, owned."""
        if self.leases is None:
            return partition in self.partitions
        worker = self._by_partition.get(partition)
        return (worker is not None and worker.consuming and worker.fence is not None
                and worker.fence())

    async def _acquire(self, partition: int, lease: Lease) -> None:
        """A lease was taken: restore the partition and consume it while the lease holds."""
        assert self._nc is not None and self._js is not None and self._snapshots is not None
        worker = PartitionWorker(partition, self._nc, self._js, self.cfg, self.make_pipeline,
                                 self.store, self.sink, self._snapshots, fence=lease.valid,
                                 lifecycle=self.lifecycle, missing=self.missing,
                                 peers=self.peers)
        self.workers.append(worker)
        self._by_partition[partition] = worker
        self.partitions.append(partition)
        self.partitions.sort()

        async def restore_and_run() -> None:
            # in a task of its own: a slow restore must not delay the renewal of other leases
            if self.on_acquired is not None:
                await self.on_acquired(partition)
            await worker.start()
            await worker.run()

        self._tasks[partition] = asyncio.create_task(restore_and_run(),
                                                     name=f"partition-{partition}")

    async def _release(self, partition: int) -> None:
        """A lease is given up or lost: the worker finishes (fenced) and is dropped."""
        worker = self._by_partition.pop(partition, None)
        task = self._tasks.pop(partition, None)
        if worker is None or task is None:
            return
        worker.stop()
        try:
            await task
        except Exception:
            _log.exception("partition %d: worker failed", partition)
        self.workers.remove(worker)
        self.partitions.remove(partition)
        if self.on_released is not None:
            await self.on_released(partition)

    async def _run_leased(self) -> None:
        """Lease rounds every quarter of the lease term until :meth:`stop`."""
        assert self.leases is not None
        self.ready.set()
        watch = asyncio.create_task(self._watch_stream())
        renewals = asyncio.create_task(self._renew_forever())
        every = self.cfg.lease_ttl_s / 4
        try:
            while not self._stopping.is_set():
                try:
                    await self.leases.round()
                except (TimeoutError, nats.errors.Error) as exc:
                    _log.warning("lease round failed: %s", exc)
                for partition, task in list(self._tasks.items()):
                    if task.done() and partition in self.leases.leases:
                        # a worker that ended by itself (fenced, or crashed): let it go
                        await self.leases.release(partition)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), every)
            await self.leases.release_all()
        finally:
            await cancel_and_wait([watch, renewals, *self._tasks.values()])

    async def _renew_forever(self) -> None:
        """Renew the held leases every eighth of the term, apart from the (slower) rounds."""
        assert self.leases is not None
        while not self._stopping.is_set():
            await asyncio.sleep(self.cfg.lease_ttl_s / 8)
            try:
                await self.leases.renew()
            except (TimeoutError, nats.errors.Error) as exc:
                _log.warning("lease renewal failed: %s", exc)

    async def run(self) -> None:
        """Restore every partition, then consume until :meth:`stop`."""
        if self.leases is not None:
            await self._run_leased()
            return
        for worker in self.workers:
            await worker.start()
        self.ready.set()
        tasks = [asyncio.create_task(w.run(), name=f"partition-{w.partition}")
                 for w in self.workers]
        watch = asyncio.create_task(self._watch_stream())
        try:
            await asyncio.gather(*tasks)
            _log.info("partitions %s stopped", self.partitions)
        finally:
            await cancel_and_wait([watch, *tasks])

    async def _watch_stream(self) -> None:
        assert self.monitor is not None
        while True:
            await asyncio.sleep(self.monitor_interval_s)
            try:
                await self.monitor.check(list(self.partitions))
            except (TimeoutError, nats.errors.Error) as exc:
                _log.warning("stream monitor: %s", exc)

    def stats(self) -> list[PartitionStats]:
        """Per-partition counters."""
        return [w.stats for w in self.workers]
