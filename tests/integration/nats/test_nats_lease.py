"""Partition leases against a real nats-server: shares, takeover, fencing, never two owners.

Members here start and stop nothing: their ``start``/``stop`` callbacks record ownership, so
the lease protocol itself is what is checked. Lease terms are 0.5-2 s so expiry is quick.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from nats.js.kv import KeyValue

from core.detect import RobustZ
from core.events import ScoredBatch
from core.nats import NatsConfig, PartitionStats, PartitionWorker, SnapshotStore, ensure_stream
from core.nats.lease import Lease, LeaseKeeper, open_lease_bucket
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from tests.integration.nats.fleet import SyntheticFleet
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

_T = TypeVar("_T")


class _Member:
    """A keeper plus what it believes it consumes (what a worker process would run)."""

    def __init__(self, kv: KeyValue, name: str, partitions: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consuming: dict[int, Lease] = {}

        async def start(partition: int, lease: Lease) -> None:
            self.consuming[partition] = lease

        async def stop(partition: int) -> None:
            self.consuming.pop(partition, None)

        self.keeper = LeaseKeeper(kv, name, partitions, ttl_s, start, stop, max_moves=8,
                                  clock=clock)

    def acknowledging(self) -> set[int]:
        """Partitions this member would still acknowledge (the fence holds)."""
        return {p for p, lease in self.consuming.items() if lease.valid()}


async def _bucket(server: NatsServer, ttl_s: float) -> tuple[Any, KeyValue]:
    nc = await nats.connect(server.url)
    kv = await open_lease_bucket(nc.jetstream(), f"lease-{uuid.uuid4().hex[:10]}", ttl_s)
    return nc, kv


def _run(coro: Awaitable[_T]) -> _T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_members_share_evenly_and_take_over_a_dead_ones_partitions(
        nats_server: NatsServer) -> None:
    async def scenario() -> None:
        nc, kv = await _bucket(nats_server, 1.0)
        try:
            members = [_Member(kv, name, 8, 1.0) for name in ("a", "b", "c")]
            for _ in range(3):
                for member in members:
                    await member.keeper.round()
            held = [sorted(m.consuming) for m in members]
            assert sorted(len(h) for h in held) == [2, 3, 3]
            # renewals from the engine's renewal task and from a round may overlap
            lost = await asyncio.gather(*(m.keeper.renew() for m in members for _ in "ab"))
            assert lost == [[]] * 6 and [sorted(m.consuming) for m in members] == held
            assert sorted(p for h in held for p in h) == list(range(8))
            dead, alive = members[0], members[1:]
            orphaned = set(dead.consuming)
            started = time.monotonic()
            while orphaned - {p for m in alive for p in m.consuming}:
                assert time.monotonic() - started < 10, "orphaned partitions not taken"
                for member in alive:
                    await member.keeper.round()
                    # the dead member's fence ends before anyone else gets its partitions
                    assert not (dead.acknowledging() & set(member.consuming))
                await asyncio.sleep(0.25)
            assert sorted(len(m.consuming) for m in alive) == [4, 4]
            # a member joining back gets a share again, a bounded number of moves later
            back = _Member(kv, "d", 8, 1.0)
            for _ in range(4):
                for member in [*alive, back]:
                    await member.keeper.round()
            assert sorted(len(m.consuming) for m in [*alive, back]) == [2, 3, 3]
        finally:
            await nc.close()

    _run(scenario())


def test_a_paused_owner_is_fenced_before_its_lease_can_be_taken(
        nats_server: NatsServer) -> None:
    async def scenario() -> None:
        nc, kv = await _bucket(nats_server, 2.0)
        now = [100.0]
        try:
            paused = _Member(kv, "a", 2, 2.0, clock=lambda: now[0])
            await paused.keeper.round()
            assert paused.acknowledging() == {0, 1}
            other = _Member(kv, "b", 2, 2.0)
            await other.keeper.round()
            assert not other.consuming  # the leases are live: nothing to take
            now[0] += 1.3  # 0.6 of the term: the owner stops trusting its leases
            assert paused.acknowledging() == set()
            # a late renewal fails the revision check once another member holds the key
            started = time.monotonic()
            while len(other.consuming) < 2:
                assert time.monotonic() - started < 10, "expired leases not taken"
                await asyncio.sleep(0.3)
                await other.keeper.round()
            lost = await paused.keeper.round()
            assert sorted(lost.lost) == [0, 1] and not paused.consuming
        finally:
            await nc.close()

    _run(scenario())


#: the state machine's lease term; a step of time is 0.4 of it. Waiting is nearly all of that
#: test's time, so the term is half a second (a fence of 0.3 s; it was 1 s)
TTL_S = 0.5


class LeaseMachine(RuleBasedStateMachine):
    """Members join, run rounds, pause (no rounds: their leases run out) and come back;
    whatever happens, no partition is acknowledged by two members at once."""

    server: NatsServer

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.nc, self.kv = self.loop.run_until_complete(_bucket(self.server, TTL_S))
        self.members = [_Member(self.kv, f"m{i}", 6, TTL_S) for i in range(3)]
        self.paused: set[int] = set()

    @rule(index=st.integers(0, 2))
    def round(self, index: int) -> None:
        if index not in self.paused:
            self.loop.run_until_complete(self.members[index].keeper.round())

    @rule(index=st.integers(0, 2))
    def pause(self, index: int) -> None:
        self.paused.add(index)

    @rule(index=st.integers(0, 2))
    def resume(self, index: int) -> None:
        self.paused.discard(index)

    @rule()
    def time_passes(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0.4 * TTL_S))

    @invariant()
    def never_two_owners(self) -> None:
        seen: dict[int, str] = {}
        for member in self.members:
            for partition in member.acknowledging():
                assert partition not in seen, (
                    f"partition {partition} acknowledged by {seen.get(partition)} and "
                    f"{member.keeper.member}")
                seen[partition] = member.keeper.member

    def teardown(self) -> None:
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()


def test_never_two_owners(nats_server: NatsServer) -> None:
    LeaseMachine.server = nats_server
    case = LeaseMachine.TestCase
    case.settings = settings(max_examples=8, stateful_step_count=25, deadline=None,
                             suppress_health_check=list(HealthCheck))
    case().runTest()


def test_a_fenced_partition_worker_acknowledges_nothing(nats_server: NatsServer,
                                                        unique_tenant: str) -> None:
    """Once its lease is not trusted, a worker stops with its batch unacknowledged and saves
    no snapshot: the next owner replays the batch."""
    cfg = NatsConfig(url=nats_server.url, stream=f"F_{unique_tenant}", partitions=1,
                     ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                     partition_prefix=f"f.{unique_tenant}", fetch_batch=8,
                     snapshot_bucket=f"fsnap-{unique_tenant}", max_bytes=64 * 1024**2)
    fleet = SyntheticFleet(unique_tenant, devices=2, batch_samples=10)
    handed: list[ScoredBatch] = []
    trusted = [True]

    async def sink(batch: ScoredBatch) -> None:
        handed.append(batch)

    async def scenario() -> tuple[int, int, PartitionStats]:
        nc = await nats.connect(cfg.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg)
            for topic, payload, _ in fleet.batches(4):
                await js.publish(topic.replace("/", "."), payload)
            worker = PartitionWorker(
                0, nc, js, cfg, lambda handoff: CorePipeline(RobustZ(), handoff),
                EmbeddedStore(":memory:"), sink, SnapshotStore(js, cfg.snapshot_bucket),
                fence=lambda: trusted[0])
            await worker.start()
            runner = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 20
            while worker.stats.messages < 8 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            trusted[0] = False  # the lease runs out while the worker waits for more
            for topic, payload, _ in fleet.batches(2):
                await js.publish(topic.replace("/", "."), payload)
            await asyncio.wait_for(runner, 20)  # it stops by itself
            info = await js.consumer_info(cfg.stream, cfg.consumer_name(0))
            return info.ack_floor.stream_seq, info.num_ack_pending + info.num_pending, \
                worker.stats
        finally:
            await nc.close()

    floor, unacknowledged, stats = _run(scenario())
    assert stats.messages == 8 and floor == 8  # what it handled under its lease
    assert unacknowledged == 4  # the batch fetched after the fence is left for the next owner
    assert stats.snapshots == 0  # no snapshot without the lease
