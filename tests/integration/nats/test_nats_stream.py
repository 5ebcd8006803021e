"""The partitioned stream against a real nats-server: device affinity, the fill alert, and a
partition's snapshot restored by the next owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import nats
import numpy as np
import pytest
from nats.js.client import JetStreamContext

from core.detect import RobustZ
from core.events import ScoredBatch
from core.nats import NatsConfig, NatsEngine, SnapshotStore, StreamMonitor, ensure_stream
from core.nats.snapshot import Snapshot
from core.nats.stream import partition_of_subject, topic_of_subject
from core.pipeline import CorePipeline
from core.store.base import TimeSeriesStore
from core.store.embedded import EmbeddedStore
from forewarn.core_metrics import CoreMetrics
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration


def _config(server: NatsServer, tenant: str, **overrides: object) -> NatsConfig:
    # streams of the session's server share its store reservation: keep each one small
    values: dict[str, object] = {"max_bytes": 64 * 1024**2, "partitions": 4, **overrides}
    return NatsConfig(url=server.url, stream=f"S_{tenant}",
                      ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                      partition_prefix=f"p.{tenant}", snapshot_bucket=f"snap-{tenant}",
                      **values)


@asynccontextmanager
async def _jetstream(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_a_device_always_lands_in_one_partition(nats_server: NatsServer,
                                                unique_tenant: str) -> None:
    cfg = _config(nats_server, unique_tenant)
    fleet = SyntheticFleet(unique_tenant, devices=20, batch_samples=2)

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            await ensure_stream(js, cfg)
            for topic, payload, _ in fleet.batches(3):
                await js.publish(topic.replace("/", "."), payload)
            info = await js.stream_info(cfg.stream, subjects_filter=">")
            subjects = info.state.subjects or {}
            partitions: dict[str, set[int]] = {}
            for subject, count in subjects.items():
                assert count == 3
                topic = topic_of_subject(subject, cfg)
                partitions.setdefault(topic, set()).add(partition_of_subject(subject))
            assert len(partitions) == 20
            assert all(len(p) == 1 for p in partitions.values())
            assert len(set().union(*partitions.values())) == 4  # 20 devices spread over all 4

    _run(scenario)


def test_full_stream_discards_old_and_raises_the_alert(nats_server: NatsServer,
                                                        unique_tenant: str) -> None:
    cfg = _config(nats_server, unique_tenant, max_bytes=1024 * 1024, alert_fill=0.5)
    payload = b"x" * 20_000

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            await ensure_stream(js, cfg)
            monitor = StreamMonitor(js, cfg)
            await js.add_consumer(cfg.stream, durable_name=cfg.consumer_name(0),
                                  filter_subject=f"{cfg.partition_prefix}.>")
            assert await monitor.check([0]) is None
            for i in range(120):  # 2.4 MB into a 1 MiB stream: NATS acknowledges every one
                await js.publish(f"forewarn.v1.{unique_tenant}.d{i}.telemetry", payload)
            info = await js.stream_info(cfg.stream)
            assert info.state.first_seq > 1  # the oldest were discarded
            alert = await monitor.check([0])
            assert alert is not None and alert.lost_unread > 0 and alert.fill > 0.5
            # and /metrics shows it (issue 23.3)
            metrics = CoreMetrics()
            metrics.partition_stats = list
            metrics.stream_monitor = monitor
            text = metrics.exposition().decode()
            assert "forewarn_stream_alert 1.0" in text
            assert "forewarn_stream_discarded_unread 0.0" not in text

    _run(scenario)


def test_full_stream_without_the_bridge_counts_what_it_discarded_per_device(
        nats_server: NatsServer, unique_tenant: str) -> None:
    """The default ingress (devices straight on nats-server's MQTT listener, no ingest
    bridge): nats-server acknowledges every publish and a full stream drops its oldest
    messages unread. The worker that reads the partition next counts each device's missing
    batches from the holes in its sequence, from the snapshot's last batch on."""
    cfg = _config(nats_server, unique_tenant, partitions=1, max_bytes=1024**2,
                  fetch_batch=16)
    fleet = SyntheticFleet(unique_tenant, devices=2, batch_samples=200)  # ≈ 9 kB a batch
    store = EmbeddedStore(":memory:")
    read: list[tuple[str, int]] = []

    async def sink(batch: ScoredBatch) -> None:
        # the fleet's round (its batches' seq) from the first sample's time
        read.append((batch.device_id, round((float(batch.t[0]) - fleet.start_t)
                                            / (fleet.batch_samples * fleet.period_s))))

    def make_pipeline(handoff: TimeSeriesStore) -> CorePipeline:
        return CorePipeline(RobustZ(), handoff)

    async def consume(until: Callable[[NatsEngine], Awaitable[bool]]) -> NatsEngine:
        async with NatsEngine(cfg, [0], make_pipeline, store, sink) as engine:
            runner = asyncio.create_task(engine.run())
            deadline = time.monotonic() + 30
            while not await until(engine):
                assert time.monotonic() < deadline, engine.stats()
                await asyncio.sleep(0.05)
            engine.stop()
            await runner
        return engine

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            await ensure_stream(js, cfg)

            async def all_read(engine: NatsEngine) -> bool:
                if not engine.workers[0].consuming:
                    return False  # the consumer is still the previous run's, or none
                info = await js.consumer_info(cfg.stream, cfg.consumer_name(0))
                return not info.num_pending and not info.num_ack_pending and bool(read)

            await asyncio.to_thread(publish_mqtt, nats_server.host, nats_server.mqtt_port,
                                    fleet.batches(1))
            await consume(all_read)  # seq 0 of each device read; the snapshot says so
            assert sorted(read) == [("d0000", 0), ("d0001", 0)]
            read.clear()
            # the workers are away: 2 × 150 batches (≈ 2.7 MB) into a 1 MiB stream
            await asyncio.to_thread(publish_mqtt, nats_server.host, nats_server.mqtt_port,
                                    fleet.batches(150))
            info = await js.stream_info(cfg.stream)
            assert info.state.first_seq > 3  # unread telemetry discarded
            engine = await consume(all_read)
        seqs = {d: sorted(s for dev, s in read if dev == d) for d in ("d0000", "d0001")}
        for device, got in seqs.items():
            assert got == list(range(got[0], 151)), got  # the newest kept, in order
            # every batch is read or counted as missing for its device: 150 in all
            assert engine.missing[(unique_tenant, device)] == got[0] - 1 > 0
            assert len(got) + engine.missing[(unique_tenant, device)] == 150
        metrics = CoreMetrics()
        metrics.partition_stats = engine.stats
        metrics.partition_missing = engine.missing
        text = metrics.exposition().decode()
        missing = engine.missing[(unique_tenant, "d0000")]
        assert (f'forewarn_partition_gap_batches_total{{device="d0000",tenant="{unique_tenant}"}}'
                f" {float(missing)}") in text, text

    _run(scenario)


def test_snapshot_round_trip_through_the_object_store(nats_server: NatsServer,
                                                      unique_tenant: str) -> None:
    cfg = _config(nats_server, unique_tenant)
    fleet = SyntheticFleet(unique_tenant, devices=3, batch_samples=50)
    pipeline = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
    for topic, payload, _ in fleet.batches(4):
        pipeline.process_payload(topic, payload)

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            store = SnapshotStore(js, cfg.snapshot_bucket)
            assert await store.load(2) is None
            await store.save(Snapshot(2, 1234, 0.0, pipeline.state()))
            restored = await store.load(2)
        assert restored is not None and restored.stream_seq == 1234
        again = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
        again.load_state(restored.state)
        # the same next batch scores the same in both: the baseline came through
        topic, payload, _ = next(fleet.batches(1))
        a = pipeline.process_payload(topic, payload)
        b = again.process_payload(topic, payload)
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.scores, b.scores)
        assert again.process_payload(topic, payload) is None  # dedup memory came through

    _run(scenario)
