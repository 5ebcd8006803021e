"""Peer groups across NATS partitions (issue 20 on the scale-out engine).

Two worker engines against a real nats-server, each consuming two of the stream's four
partitions. Eight heat pumps, two per partition, each at a level of its own; one of them jumps
away from the others. The peer detector needs five members reporting a bucket: no partition
(nor either worker) holds that many, so with the partitions' peer summaries shared through the
key-value bucket the jumping pump is flagged, once, by the worker that owns it, and no other
is; with sharing off nothing is judged at all. Without the engine's peer summaries (main before
this test) no peer flag comes out at all. The devices publish while the workers consume, as in
production: a bucket is then often judged after its owner's last batch was scored, and its
onsets go out on their own (before the fix no flag came out at all that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence

import nats
import numpy as np
import pytest

import core.nats.peers
from core.detect import RobustZ
from core.detect.peer import Peer
from core.detect.peer_share import PeerBoard, PeerSummary
from core.events import ScoredBatch
from core.nats import NatsConfig, NatsEngine, ensure_stream
from core.nats.peers import PeerExchange
from core.pipeline import CorePipeline
from core.store.base import TimeSeriesStore
from core.store.embedded import EmbeddedStore
from forewarn.workers import device_partition
from tests.integration.nats.fleet import SyntheticFleet
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

DEVICES, ROUNDS, MIN_MEMBERS = 8, 40, 5


def _config(server: NatsServer, tenant: str, share: bool) -> NatsConfig:
    tag = f"{tenant}{int(share)}"
    return NatsConfig(url=server.url, stream=f"P_{tag}", partitions=4,
                      ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                      partition_prefix=f"p.{tag}", fetch_batch=16, fetch_timeout_s=0.2,
                      snapshot_bucket=f"psnap-{tag}", max_bytes=64 * 1024**2,
                      peer_share=share, peer_bucket=f"peers-{tag}", peer_wait_s=5.0)


def _pipeline(handoff: TimeSeriesStore) -> CorePipeline:
    # five-minute buckets (one batch of 30 samples of 10 s), judged five minutes late
    peer = Peer(bucket_s=300.0, lag_s=300.0, warmup=6, min_members=MIN_MEMBERS)
    return CorePipeline(RobustZ(), handoff, peer=peer)


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """The kernels compiled before the clocks run: on a cold numba cache (a fresh clone) the
    first batch compiles them inside a worker's loop, for longer than a bucket's wait."""
    pipeline = _pipeline(EmbeddedStore(":memory:"))
    fleet = SyntheticFleet("warm", devices=2, batch_samples=30, faulty=0, fault_at=0, jump=0.0)
    for topic, payload, _ in fleet.batches(2):
        pipeline.process_payload(topic, payload)
    board = PeerBoard(2, wait_s=0.0)
    peers = [Peer(capacity=4, bucket_s=300.0, lag_s=0.0, warmup=1, min_members=2)
             for _ in range(2)]
    t = 300.0 * np.arange(8, dtype=np.float64)
    for p, peer in enumerate(peers):
        peer.share = board.share_for(p)
        peer.assign(np.arange(2), ["g", "g"], ["c", "c"])
    for peer in peers:
        peer.update(np.arange(2), np.ones((8, 2)), t)
    for peer in peers:
        peer.judge_pending()


Until = Callable[[list[NatsEngine], Counter[tuple[str, str]]], bool]


def _all_read(count: int, flagged: int) -> Until:
    """Every message read and at least ``flagged`` peer onsets handed on."""
    def until(engines: list[NatsEngine], flags: Counter[tuple[str, str]]) -> bool:
        read = sum(s.messages for e in engines for s in e.stats())
        return read == count and len(flags) >= flagged
    return until


async def _run(cfg: NatsConfig, tenant: str, until: Until,
               slices: Sequence[list[int]] = ([0, 1], [2, 3]),
               ) -> tuple[Counter[tuple[str, str]], list[NatsEngine]]:
    """Workers (one per slice) through the fleet until ``until``; the peer onsets (device,
    field) each handed on."""
    flags: Counter[tuple[str, str]] = Counter()
    owners: dict[str, set[int]] = {}

    def sink_of(index: int):  # type: ignore[no-untyped-def]
        async def sink(batch: ScoredBatch) -> None:
            owners.setdefault(batch.device_id, set()).add(index)
            for event in batch.events:
                if event.detector == "peer":
                    flags[(event.device_id, event.field)] += 1
        return sink

    engines = [NatsEngine(cfg, slice_, _pipeline, EmbeddedStore(":memory:"), sink_of(i))
               for i, slice_ in enumerate(slices)]
    async with contextlib.AsyncExitStack() as stack:
        for engine in engines:
            await stack.enter_async_context(engine)
        runners = [asyncio.create_task(e.run()) for e in engines]
        try:
            await asyncio.gather(*(e.ready.wait() for e in engines))
            # the devices publish from their own thread and loop, as separate processes would:
            # a worker compiling its kernels on a cold numba cache blocks only its own loop
            await asyncio.to_thread(asyncio.run, _publish(cfg, tenant))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not until(engines, flags):
                await asyncio.sleep(0.05)
        finally:
            for engine in engines:
                engine.stop()
            await asyncio.wait_for(asyncio.gather(*runners), 30)
    assert all(len(held) == 1 for held in owners.values())  # each device, one worker
    return flags, engines


async def _publish(cfg: NatsConfig, tenant: str) -> None:
    nc = await nats.connect(cfg.url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, cfg)
        fleet = SyntheticFleet(tenant, devices=DEVICES, batch_samples=30, faulty=1,
                               fault_at=30 * 24, jump=12.0)
        for topic, payload, _ in fleet.batches(ROUNDS):
            await js.publish(topic.replace("/", "."), payload)
    finally:
        await nc.close()


def test_a_peer_group_split_over_partitions_flags_the_device_leaving_it(
        nats_server: NatsServer, unique_tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # each partition's ten members (two pumps × five fields, 41 bytes each) go in several
    # keys: the assembly of a large partition's summary from parts runs too
    monkeypatch.setattr(core.nats.peers, "PART_BYTES", 2_048 + 100)
    split = Counter(device_partition(_config(nats_server, unique_tenant, True), unique_tenant,
                                     f"d{i:04d}") for i in range(DEVICES))
    assert max(split.values()) * 2 < MIN_MEMBERS  # not even one worker's share judges alone

    flags, engines = asyncio.run(_run(_config(nats_server, unique_tenant, True), unique_tenant,
                                      _all_read(DEVICES * ROUNDS, 3)))
    assert {device for device, _ in flags} == {"d0000"}
    assert set(flags.values()) == {1}  # each field's onset handed on once
    assert len(flags) >= 3
    boards = [e.peers.board.stats for e in engines if e.peers is not None]
    assert all(e.peers is not None and e.peers.received > 0 for e in engines)
    assert sum(b.buckets_gathered for b in boards) > 0
    assert sum(b.buckets_partial for b in boards) == 0  # every partition in time

    other = f"{unique_tenant}x"  # a stream's subjects must not overlap another's
    alone, _ = asyncio.run(_run(_config(nats_server, other, False), other,
                                _all_read(DEVICES * ROUNDS, 0)))
    assert not alone


def test_a_partition_nobody_runs_is_waited_for_once_then_judged_without(
        nats_server: NatsServer, unique_tenant: str) -> None:
    """Only the first worker runs: on a fresh board a bucket waits for all four partitions,
    so the first bucket is judged without partitions 2 and 3 once ``peer_wait_s`` passed
    (counted, in each of the worker's two partitions); after that only the partitions that
    published recently are waited for, and every later bucket is judged at once."""
    cfg = _config(nats_server, unique_tenant, True).model_copy(update={"peer_wait_s": 0.5})
    mine = sum(device_partition(cfg, unique_tenant, f"d{i:04d}") in (0, 1)
               for i in range(DEVICES))

    def judged(engines: list[NatsEngine], flags: Counter[tuple[str, str]]) -> bool:
        return (_all_read(mine * ROUNDS, 0)(engines, flags)
                and all("peer.pending_bucket" not in w.pipeline.state().detector
                        for w in engines[0].workers))
    _, engines = asyncio.run(_run(cfg, unique_tenant, judged, slices=([0, 1],)))
    assert engines[0].peers is not None
    stats = engines[0].peers.board.stats
    assert (stats.buckets_partial, stats.partitions_missing) == (2, 4)
    assert stats.buckets_gathered >= 2 * (ROUNDS - 4)  # the rest, judged over both


def test_a_bucket_let_go_is_read_again_from_the_key_value_bucket(
        nats_server: NatsServer, unique_tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process lets a bucket's members go once its partitions judged it; a partition that
    judges it again (taken over, replaying) gets every partition's summary back from the
    key-value bucket, a summary of several keys whole again."""
    monkeypatch.setattr(core.nats.peers, "PART_BYTES", 4_096)
    cfg = _config(nats_server, unique_tenant, True).model_copy(
        update={"partitions": 2, "peer_wait_s": 30.0})
    rng = np.random.default_rng(2)
    theirs = PeerSummary.of(group=rng.integers(1, 9, 500), cohort=rng.integers(1, 4, 500),
                            val=rng.normal(size=500), offset=rng.normal(size=500),
                            warm=rng.random(500) < 0.5)
    ours = PeerSummary.of(group=[1], cohort=[1], val=[0.5])

    async def gathered(exchange: PeerExchange) -> list[PeerSummary]:
        deadline = time.monotonic() + 10
        while (got := exchange.board.gather(0, 7)) is None:
            assert time.monotonic() < deadline
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exchange.arrived.wait(), 1.0)
            exchange.arrived.clear()
        return got

    async def main() -> tuple[list[PeerSummary], list[PeerSummary], list[int], int]:
        nc = await nats.connect(cfg.url)
        here, there = PeerExchange(nc.jetstream(), cfg), PeerExchange(nc.jetstream(), cfg)
        try:
            await here.start()
            await there.start()
            there.board.publish(1, 7, theirs)  # in 5 keys
            here.board.publish(0, 7, ours)
            first = await gathered(here)
            held = here.board.held_buckets
            again = await gathered(here)
            return first, again, held, here.fetched
        finally:
            await here.close()
            await there.close()
            await nc.close()

    first, again, held, fetched = asyncio.run(main())
    assert held == [] and fetched == 1
    for got in (first, again):
        assert len(got) == 1
        for name in PeerSummary.COLUMNS:
            np.testing.assert_array_equal(getattr(got[0], name), getattr(theirs, name))
