"""The disk queue as a state machine: an acknowledged record never comes back; an accepted record
is never lost unless the cap dropped it, and then the drop is counted; a staged sample is either
still staged or inside a record, across crashes and failed transactions."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from edge.queue import RECORD_OVERHEAD_BYTES, DiskQueue, Priority

MAX_BYTES = 2_000
MAX_AGE_S = 100.0
TOPIC = "forewarn/v1/t/d/telemetry"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class DiskQueueMachine(RuleBasedStateMachine):
    """Model: the ids the queue must still hold, with their priority, size and creation time."""

    records = Bundle("records")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="fw-queue-"))
        self.clock = _Clock()
        self.queue = self._open()
        self.model: dict[int, tuple[Priority, int, float, int]] = {}
        self.acked: set[int] = set()
        self.dropped_records = 0
        self.dropped_samples = 0
        self.staged: list[tuple[float, list[float | None]]] = []
        self.accepted_samples = 0
        self.next_t = 0.0

    def _open(self) -> DiskQueue:
        return DiskQueue(self.tmp / "q.sqlite", max_bytes=MAX_BYTES, max_age_s=MAX_AGE_S,
                         clock=self.clock)

    @initialize()
    def start_empty(self) -> None:
        assert self.queue.depth == 0

    def _reconcile(self, allowed_priority: Priority | None) -> set[int]:
        """Ids that vanished since the model was updated must be exactly the counted drops."""
        held = {r.id for r in self.queue.peek(10_000)}
        assert not held & self.acked, "an acknowledged record came back"
        vanished = set(self.model) - held
        for record_id in vanished:
            priority, _, created, n_samples = self.model.pop(record_id)
            stale = created < self.clock.now - MAX_AGE_S
            assert stale or (allowed_priority is not None and priority <= allowed_priority), (
                "a record was dropped that was neither stale nor of lower priority"
            )
            self.dropped_records += 1
            self.dropped_samples += n_samples
        return held

    @rule(target=records, payload_len=st.integers(0, 700),
          priority=st.sampled_from(Priority), n_samples=st.integers(0, 50))
    def put(self, payload_len: int, priority: Priority, n_samples: int) -> object:
        record_id = self.queue.put(TOPIC, b"x" * payload_len, priority=priority,
                                   n_samples=n_samples)
        self._reconcile(priority)
        if record_id is None:
            self.dropped_records += 1
            self.dropped_samples += n_samples
            return multiple()
        size = payload_len + len(TOPIC) + RECORD_OVERHEAD_BYTES
        self.model[record_id] = (priority, size, self.clock.now, n_samples)
        return record_id

    @rule(record_id=consumes(records))
    def ack(self, record_id: int) -> None:
        was_held = record_id in self.model
        assert self.queue.ack(record_id) == was_held
        self.model.pop(record_id, None)
        self.acked.add(record_id)

    @rule(record_id=consumes(records))
    def refused_for_good(self, record_id: int) -> None:
        was_held = record_id in self.model
        assert self.queue.drop(record_id) == was_held
        if was_held:
            _, _, _, n_samples = self.model.pop(record_id)
            self.dropped_records += 1
            self.dropped_samples += n_samples
        self.acked.add(record_id)  # gone for good, like an acknowledged one

    @rule(seconds=st.floats(0, 60))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(n=st.integers(1, 5), missing=st.booleans())
    def stage(self, n: int, missing: bool) -> None:
        rows = []
        for _ in range(n):
            rows.append((self.next_t, [None if missing else self.next_t, 1.5]))
            self.next_t += 1.0
        self.queue.stage(rows)
        self.staged.extend(rows)
        self.accepted_samples += n

    @precondition(lambda self: bool(self.staged))
    @rule(data=st.data(), fail=st.booleans())
    def cut_batch(self, data: st.DataObject, fail: bool) -> None:
        """The batcher cuts the oldest staged samples into a record; maybe the commit fails."""
        keep = data.draw(st.integers(0, len(self.staged) - 1))
        cut = len(self.staged) - keep
        record_id = None
        try:
            with self.queue.transaction():
                record_id = self.queue.put(TOPIC, b"x" * 10 * cut, n_samples=cut)
                self.queue.restage(self.staged[cut:])
                if fail:
                    raise OSError("simulated failure before commit")
        except OSError:
            assert self.queue.staged() == self.staged
            return
        self._reconcile(Priority.TELEMETRY)
        if record_id is None:
            self.dropped_records += 1
            self.dropped_samples += cut
        else:
            size = 10 * cut + len(TOPIC) + RECORD_OVERHEAD_BYTES
            self.model[record_id] = (Priority.TELEMETRY, size, self.clock.now, cut)
        self.staged = self.staged[cut:]

    @rule()
    def crash_and_reopen(self) -> None:
        # committed data is all there is: closing and reopening is what a kill -9 leaves
        self.queue.close()
        self.queue = self._open()

    @precondition(lambda self: bool(self.model))
    @rule(limit=st.integers(1, 5))
    def peek_order(self, limit: int) -> None:
        self._reconcile(None)
        batch = self.queue.peek(limit)
        keys = [(-int(r.priority), r.id) for r in batch]
        assert keys == sorted(keys)

    @invariant()
    def within_caps_and_counted(self) -> None:
        assert self.queue.bytes <= MAX_BYTES
        held = self._reconcile(None)  # expires stale records, as every peek does
        assert held == set(self.model)
        stats = self.queue.stats()
        assert stats.depth == len(self.model)
        assert stats.bytes == sum(size for _, size, _, _ in self.model.values())
        assert stats.dropped_records == self.dropped_records
        assert stats.dropped_samples == self.dropped_samples
        assert stats.accepted_samples == self.accepted_samples
        assert self.queue.staged() == self.staged

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


DiskQueueMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30,
                                              deadline=None)
TestDiskQueue = DiskQueueMachine.TestCase
