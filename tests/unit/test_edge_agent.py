"""The agent with a small disk queue: caps, priorities, counted drops, crash recovery."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import Batcher
from edge.queue import DiskQueue, Priority


def _agent(queue: DiskQueue, boot: str = "b1") -> EdgeAgent:
    return EdgeAgent("acme", Batcher("hp-1", boot, "heat_pump", ("a", "b"), max_samples=10),
                     queue=queue, compress_above_bytes=None)


def test_full_queue_drops_oldest_telemetry_keeps_alarms_and_reports_it(tmp_path: Path) -> None:
    with DiskQueue(tmp_path / "q.sqlite", max_bytes=4000) as queue:
        agent = _agent(queue)
        agent.add_event("high_pressure", "alarm", {"bar": 31.5}, t=5.0)
        agent.add_samples(np.arange(200.0), np.ones((200, 2)))
        status = agent.status("online")
        records = queue.peek(1000)
        assert records[0].priority is Priority.ALARM  # kept, and sent first
        telemetry = [r for r in records if r.priority is Priority.TELEMETRY]
        assert telemetry and queue.bytes <= 4000
        assert status.dropped > 0 and status.dropped_samples == 10 * status.dropped
        assert status.queue_depth == len(records)
        # the oldest went: what is left is the newest batches
        assert telemetry[-1].id == max(r.id for r in telemetry)
        kept = queue.stats()
        assert kept.accepted_samples == 200
        assert kept.dropped_samples + sum(r.n_samples for r in telemetry) == 200


def test_staged_samples_survive_a_crash_and_are_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    queue = DiskQueue(path)
    _agent(queue).add_samples(np.arange(25.0), np.ones((25, 2)))
    assert (queue.depth, len(queue.staged())) == (2, 5)
    queue.close()  # nothing else: as if killed
    with DiskQueue(path) as queue:
        agent = _agent(queue, boot="b2")
        agent.add_samples(np.arange(25.0, 30.0), np.ones((5, 2)))  # completes the batch
        records = queue.peek(10)
        assert [r.n_samples for r in records] == [10, 10, 10]
        assert queue.staged() == []
        assert queue.stats().accepted_samples == 30


def test_backoff_grows_is_capped_and_differs_between_devices() -> None:
    fleet = [Backoff(base_s=1.0, cap_s=30.0, rng=random.Random(seed)) for seed in range(50)]
    rounds = [[b.next_delay() for b in fleet] for _ in range(8)]
    for attempt, delays in enumerate(rounds):
        assert all(0.0 <= d <= min(30.0, 2.0**attempt) for d in delays)
    # full jitter: devices that failed together do not retry together
    assert len({round(d, 3) for d in rounds[-1]}) > 45
    assert max(rounds[-1]) > 15.0
