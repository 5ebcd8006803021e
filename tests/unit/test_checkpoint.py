"""The direct engine's state on disk: after a crash the detectors go on and nothing repeats.

A "crash" here is what kill -9 leaves: the snapshot file and the journal as they were, the
process's memory gone. A new pipeline restores from the directory and is offered the messages
the broker would deliver again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from core.checkpoint import SNAPSHOT_FILE, Checkpoint
from core.detect import DetectorConfig, make_detector
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore

TOPIC = "forewarn/v1/acme/hp-1/telemetry"


def _payload(seq: int, level: float = 20.0, samples: int = 20) -> bytes:
    t = [1.7e9 + (seq * samples + i) * 60.0 for i in range(samples)]
    rng = np.random.default_rng(seq)
    values = [[round(level + float(v), 3)] for v in rng.normal(0.0, 1.0, samples)]
    return json.dumps({"v": 1, "device_id": "hp-1", "boot_id": "b1", "seq": seq,
                       "product": "heat_pump", "fields": ["flow_temp"], "t": t,
                       "values": values}).encode()


def _pipeline() -> CorePipeline:
    return CorePipeline(make_detector(DetectorConfig(warmup=30)), EmbeddedStore(":memory:"))


def test_a_crash_keeps_learning_and_drops_only_what_was_handed_on(tmp_path: Path) -> None:
    before = _pipeline()
    checkpoint = Checkpoint(tmp_path, before, clock=lambda: 1000.0)
    assert checkpoint.restore().snapshot_at is None
    for seq in range(5):
        assert before.process_payload(TOPIC, _payload(seq)) is not None
        checkpoint.commit()
    asyncio.run(checkpoint.save())
    saved = before.state().detector
    assert before.process_payload(TOPIC, _payload(5)) is not None
    checkpoint.commit()          # handed on after the snapshot: journalled
    assert before.process_payload(TOPIC, _payload(6)) is not None
    # seq 6 was accepted but the crash came before its hand-off finished: not journalled
    checkpoint.close()  # the file handle only; what is on disk is what kill -9 leaves

    after = _pipeline()
    reopened = Checkpoint(tmp_path, after)
    restored = reopened.restore()
    assert (restored.snapshot_at, restored.series, restored.journal_batches) == (1000.0, 1, 1)
    # the detector goes on from the snapshot: its arrays are the saved ones, not a fresh start
    now = after.state().detector
    assert saved.keys() == now.keys()
    assert all(np.array_equal(now[name], saved[name], equal_nan=True) for name in saved)
    assert not all(np.array_equal(_pipeline().state().detector[name], saved[name],
                                  equal_nan=True) for name in saved)
    # redelivered: 4 (in the snapshot) and 5 (in the journal) are dropped, 6 is processed
    assert after.process_payload(TOPIC, _payload(4)) is None
    assert after.process_payload(TOPIC, _payload(5)) is None
    assert after.process_payload(TOPIC, _payload(6)) is not None
    assert after.stats.duplicate_batches == 2
    reopened.close()


def test_a_snapshot_leaves_out_a_batch_not_yet_handed_on(tmp_path: Path) -> None:
    pipeline = _pipeline()
    checkpoint = Checkpoint(tmp_path, pipeline)
    checkpoint.restore()
    pipeline.process_payload(TOPIC, _payload(0))
    checkpoint.commit()
    pipeline.process_payload(TOPIC, _payload(1))  # the snapshot is taken during its hand-off
    asyncio.run(checkpoint.save())
    checkpoint.close()
    again = _pipeline()
    reopened = Checkpoint(tmp_path, again)
    reopened.restore()
    assert again.process_payload(TOPIC, _payload(0)) is None
    assert again.process_payload(TOPIC, _payload(1)) is not None
    reopened.close()


def test_a_save_drops_the_journals_it_covers(tmp_path: Path) -> None:
    pipeline = _pipeline()
    checkpoint = Checkpoint(tmp_path, pipeline)
    checkpoint.restore()
    for seq in range(3):
        pipeline.process_payload(TOPIC, _payload(seq))
        checkpoint.commit()
    assert sum(1 for _ in tmp_path.glob("dedup-*.journal")) == 1
    asyncio.run(checkpoint.save())
    journals = list(tmp_path.glob("dedup-*.journal"))
    assert len(journals) == 1 and journals[0].read_text() == ""
    checkpoint.close()


def test_a_torn_journal_line_and_an_unreadable_snapshot_start_clean(tmp_path: Path) -> None:
    (tmp_path / SNAPSHOT_FILE).write_bytes(b"not a snapshot")
    (tmp_path / "dedup-0000000003.journal").write_text(
        '["acme", "hp-1", "b1", 0]\n["acme", "hp-1", "b1", ')
    pipeline = _pipeline()
    checkpoint = Checkpoint(tmp_path, pipeline)
    restored = checkpoint.restore()
    assert (restored.snapshot_at, restored.journal_batches) == (None, 1)
    assert pipeline.process_payload(TOPIC, _payload(0)) is None
    assert pipeline.process_payload(TOPIC, _payload(1)) is not None
    checkpoint.close()
