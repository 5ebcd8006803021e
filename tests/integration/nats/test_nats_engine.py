"""One worker process in-process: everything consumed, stored once, a poison message skipped."""

from __future__ import annotations

import asyncio
import time

import nats
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import create_engine

from core.dead_letter import DeadLetters, DeadLetterStore
from core.detect import RobustZ
from core.events import ScoredBatch
from core.nats import NatsConfig, NatsEngine, ensure_stream
from core.pipeline import CorePipeline
from core.store.base import TimeSeriesStore
from core.store.embedded import EmbeddedStore
from tests.integration.nats.fleet import SyntheticFleet
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration


class _PoisonedDetector(RobustZ):
    """RobustZ that raises on every batch of one device (its series get slot 0)."""

    def update(self, slots: NDArray[np.int64] | list[int],  # type: ignore[override]
               x: NDArray[np.float64] | list[list[float]],
               t: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        if 0 in np.asarray(slots):
            raise RuntimeError("detector bug")
        return super().update(slots, x, t)


def test_engine_consumes_all_and_dead_letters_a_poison_message(
        nats_server: NatsServer, unique_tenant: str) -> None:
    cfg = NatsConfig(url=nats_server.url, stream=f"E_{unique_tenant}", partitions=1,
                     ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                     partition_prefix=f"e.{unique_tenant}", fetch_batch=8,
                     snapshot_bucket=f"esnap-{unique_tenant}", max_bytes=64 * 1024**2)
    fleet = SyntheticFleet(unique_tenant, devices=3, batch_samples=10)
    store = EmbeddedStore(":memory:")
    handed: list[ScoredBatch] = []

    async def sink(batch: ScoredBatch) -> None:
        handed.append(batch)

    dead_letter_db = create_engine("sqlite://")

    def make_pipeline(handoff: TimeSeriesStore) -> CorePipeline:
        return CorePipeline(_PoisonedDetector(), handoff, dead_letters=DeadLetters(
            store=DeadLetterStore(dead_letter_db)))

    async def scenario() -> NatsEngine:
        nc = await nats.connect(cfg.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg)
            for topic, payload, _ in fleet.batches(5):
                await js.publish(topic.replace("/", "."), payload)
        finally:
            await nc.close()
        async with NatsEngine(cfg, [0], make_pipeline, store, sink) as engine:
            runner = asyncio.create_task(engine.run())
            deadline = time.monotonic() + 20
            while engine.stats()[0].messages < 15 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            engine.stop()
            await runner
        return engine

    engine = asyncio.run(scenario())
    stats = engine.stats()[0]
    assert stats.messages == 15 and stats.snapshots == 1  # the last snapshot on the way out
    # d0000 is the first device seen, so its series hold slot 0: its 5 batches are poison
    assert dict(engine.workers[0].pipeline.dead_letters.counts) == {"crash": 5}
    # persisted, not only counted in memory (issue 18.11)
    assert DeadLetterStore(dead_letter_db).counts() == {"crash": 5}
    assert all("detector bug" in d.detail for d in DeadLetterStore(dead_letter_db).letters())
    assert len(handed) == 10
    assert store.count_samples() == 10 * 10
    store.close()
