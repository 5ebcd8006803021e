"""Core's own figures: the age of the oldest pending notice, store write time, the spool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from core.detect.peer_share import PeerBoardStats
from core.events import ScoredBatch
from core.store.base import StoreError
from core.store.buffered import BufferedStore
from core.store.embedded import EmbeddedStore
from forewarn.core_metrics import CoreMetrics
from rules.db import NoticeRow, connect


def _notice(key: str, status: str, created_at: float) -> NoticeRow:
    return NoticeRow(case_id=1, audience="customer", channel="terminal", idempotency_key=key,
                     subject="s", body="b", status=status, created_at=created_at)


def test_the_oldest_pending_notice_sets_the_age() -> None:
    engine = connect("sqlite://")
    with Session(engine) as session:
        session.add_all([_notice("a", "sent", 100.0), _notice("b", "pending", 940.0),
                         _notice("c", "pending", 990.0)])
        session.commit()
    text = CoreMetrics(engine, clock=lambda: 1000.0).exposition().decode()
    engine.dispose()
    assert "forewarn_outbox_oldest_pending_age_seconds 60.0" in text
    assert "forewarn_outbox_backlog 2.0" in text


class _Down(EmbeddedStore):
    def write_many(self, batches: object) -> None:
        raise StoreError("down")


def test_store_writes_are_timed_and_the_spool_is_reported(tmp_path: Path) -> None:
    metrics = CoreMetrics()
    store = metrics.timed_store(BufferedStore(_Down(":memory:"), tmp_path / "spool"))
    batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.array([1.0]),
                        np.array([[2.0]]), np.array([[0.0]]), ())
    store.write(batch)
    text = metrics.exposition().decode()
    store.close()
    assert "forewarn_store_write_seconds_count 1.0" in text
    assert "forewarn_spool_pending_batches 1.0" in text
    assert "forewarn_store_up 0.0" in text


def test_peer_buckets_judged_without_a_partition_are_counted() -> None:
    metrics = CoreMetrics()
    metrics.partition_stats = list
    metrics.peer_board = PeerBoardStats(buckets_gathered=7, buckets_partial=2,
                                        partitions_missing=3, summaries_late=1,
                                        buckets_fetched=4, held_bytes=1700)
    text = metrics.exposition().decode()
    assert "forewarn_peer_buckets_gathered_total 7.0" in text
    assert "forewarn_peer_buckets_partial_total 2.0" in text
    assert "forewarn_peer_partitions_missing_total 3.0" in text
    assert "forewarn_peer_summaries_late_total 1.0" in text
    assert "forewarn_peer_buckets_fetched_total 4.0" in text
    assert "forewarn_peer_board_bytes 1700.0" in text
