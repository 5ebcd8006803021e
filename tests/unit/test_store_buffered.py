"""BufferedStore and its Spool: order kept, nothing lost, drops counted, backoff on the clock."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from core.events import DetectorEvent, ScoredBatch
from core.store.base import StoreError, StoreRejectedError
from core.store.buffered import BufferedStore
from core.store.null import NullStore
from core.store.spool import Spool, decode_record, encode_record


def numbered(seq: int, n: int = 3) -> ScoredBatch:
    t = (1000.0 * seq + np.arange(n)).astype(np.float64)
    values = np.full((n, 2), float(seq))
    onset = DetectorEvent("acme", "hp-1", "heat_pump", "a", "robust_z", float(t[0]), 0.9, 1.0,
                          f"onset {seq}", time_to_limit_s=None if seq % 2 else 60.0)
    return ScoredBatch("acme", "hp-1", "heat_pump", ("a", "b"), t, values, values / 100,
                       (onset,))


ROOT = Path(__file__).resolve().parents[2]


class FlakyStore(NullStore):
    """A store that is up or down at the test's command and remembers what reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.refuse: set[int] = set()  # batch numbers it refuses for good
        self.received: list[int] = []
        self.attempts = 0
        self.closed = False

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        self.attempts += 1
        if not self.up:
            raise StoreError("connection refused")
        seqs = [int(batch.values[0, 0]) for batch in batches]
        if self.refuse & set(seqs):
            raise StoreRejectedError("400 bad line")
        self.received.extend(seqs)

    def close(self) -> None:
        self.closed = True


class Ceiling(random.Random):
    """Every full-jitter draw is its ceiling, so the test knows when a retry is due."""

    def random(self) -> float:
        return 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def buffered(inner: FlakyStore, tmp_path: Path, clock: Clock, max_bytes: int = 1 << 20
             ) -> BufferedStore:
    return BufferedStore(inner, tmp_path / "spool", max_bytes, base_delay_s=1.0, max_delay_s=8.0,
                         clock=clock, sleep=clock.sleep, rng=Ceiling())


def test_a_record_round_trips_exactly() -> None:
    batch = numbered(7)
    batch.values[1, 1] = np.nan
    again = decode_record(encode_record(batch))
    assert again.events == batch.events and again.fields == batch.fields
    np.testing.assert_array_equal(again.values, batch.values)
    np.testing.assert_array_equal(again.t, batch.t)


def test_a_damaged_record_is_refused() -> None:
    record = bytearray(encode_record(numbered(1)))
    record[30] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        decode_record(bytes(record))


def test_writes_pass_straight_through_while_the_store_is_up(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        for seq in range(3):
            store.write(numbered(seq))
        assert inner.received == [0, 1, 2]
        assert store.stats()["written_batches"] == 3 and store.stats()["spooled_batches"] == 0
    assert inner.closed


def test_an_outage_is_spooled_and_replayed_in_order(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        store.write(numbered(0))
        inner.up = False
        for seq in range(1, 6):
            store.write(numbered(seq))
            clock.now += 0.25
        stats = store.stats()
        assert stats["pending_batches"] == 5 and stats["store_up"] == 0
        assert stats["pending_samples"] == 15
        inner.up = True
        clock.now += 10.0  # past any retry delay so far
        store.write(numbered(6))  # replays, then writes, in order
        assert inner.received == list(range(7))
        stats = store.stats()
        assert (stats["replayed_batches"], stats["written_batches"]) == (5, 2)
        assert stats["pending_batches"] == 0


def test_retries_back_off_exponentially_up_to_the_cap(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        inner.up = False
        store.write(numbered(0))
        tries_at = [clock.now]
        for _ in range(400):
            before = inner.attempts
            store.write(numbered(1))
            if inner.attempts > before:
                tries_at.append(clock.now)
            clock.now += 0.5
        gaps = np.diff(tries_at).tolist()
        assert gaps[:4] == [1.0, 2.0, 4.0, 8.0] and set(gaps[4:]) == {8.0}


def test_flush_waits_for_the_store_on_the_clock(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        inner.up = False
        store.write(numbered(0))
        assert not store.flush(timeout_s=5.0)
        assert clock.now == pytest.approx(5.0)
        inner.up = True
        assert store.flush(timeout_s=60.0) and inner.received == [0]


def test_a_full_spool_drops_new_batches_and_counts_them(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    record_size = len(encode_record(numbered(0)))
    with buffered(inner, tmp_path, clock, max_bytes=3 * record_size + 10) as store:
        inner.up = False
        for seq in range(5):
            store.write(numbered(seq))
        stats = store.stats()
        assert (stats["pending_batches"], stats["dropped_batches"], stats["dropped_samples"]) == (
            3, 2, 6)
        inner.up = True
        clock.now += 100
        assert store.flush() and inner.received == [0, 1, 2]


def test_a_refused_batch_is_dropped_without_blocking_the_rest(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        inner.up = False
        for seq in range(4):
            store.write(numbered(seq))
        inner.up, inner.refuse = True, {2}
        clock.now += 100
        assert store.flush()
        assert inner.received == [0, 1, 3] and store.stats()["rejected_batches"] == 1
        with pytest.raises(StoreRejectedError):
            store.write(numbered(2))  # refused straight away: the caller hears of it


def test_the_spool_survives_a_restart(tmp_path: Path) -> None:
    inner, clock = FlakyStore(), Clock()
    with buffered(inner, tmp_path, clock) as store:
        inner.up = False
        for seq in range(4):
            store.write(numbered(seq))
    inner = FlakyStore()
    with buffered(inner, tmp_path, clock) as restarted:
        assert restarted.stats()["pending_batches"] == 4
        assert restarted.flush() and inner.received == [0, 1, 2, 3]
    with Spool(tmp_path / "spool", max_bytes=1 << 20) as spool:
        assert len(spool) == 0 and spool.nbytes == 0


_APPENDER = """
import sys
from pathlib import Path

import numpy as np

from core.events import ScoredBatch
from core.store.spool import Spool

spool = Spool(Path(sys.argv[1]), max_bytes=1 << 30)
seq = 0
while True:
    values = np.full((200, 1), float(seq))
    assert spool.append(ScoredBatch("acme", "hp-1", "heat_pump", ("a",),
                                    np.arange(200, dtype=np.float64), values, values))
    print(seq, flush=True)  # returned: the append is committed
    seq += 1
"""


def test_a_kill_mid_append_loses_no_append_that_returned(tmp_path: Path) -> None:
    # a process appending as fast as it can is killed (SIGKILL) at a random moment, mostly in
    # the middle of an append: every append that returned is there, whole and in order
    child = subprocess.Popen([sys.executable, "-c", _APPENDER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    returned = -1
    for line in child.stdout:
        returned = int(line)
        if returned >= 300:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with Spool(tmp_path, max_bytes=1 << 30) as spool:
        kept = [int(b.values[0, 0]) for b in spool.peek(100_000)]
        assert spool.damaged == 0
    # the appends after the last line read may have committed too, never a gap or a torn one
    assert kept == list(range(len(kept))) and len(kept) > returned


def test_replay_resumes_where_it_stopped_after_a_restart(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        for seq in range(5):
            spool.append(numbered(seq))
        spool.pop(2)
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert [int(b.values[0, 0]) for b in spool.peek(10)] == [2, 3, 4]
        assert spool.n_samples == 3 * 3 and len(spool) == 3


def test_a_spool_of_segment_files_from_an_older_forewarn_is_imported(tmp_path: Path) -> None:
    # the layout before SQLite: records back to back in NNN.seg, a cursor at the first pending
    records = [encode_record(numbered(seq)) for seq in range(4)]
    (tmp_path / "000000000001.seg").write_bytes(b"".join(records[:2]))
    (tmp_path / "000000000002.seg").write_bytes(records[2] + records[3][:-7])  # torn tail
    (tmp_path / "cursor.json").write_text(
        json.dumps({"segment": 1, "offset": len(records[0])}))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert [int(b.values[0, 0]) for b in spool.peek(10)] == [1, 2]
        assert spool.damaged == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("spool.sqlite")) == []
    with Spool(tmp_path, max_bytes=1 << 20) as spool:  # imported once
        assert len(spool) == 2


def test_a_spool_emptied_then_reopened_keeps_what_comes_next(tmp_path: Path) -> None:
    # found by tests/property/test_store_buffered.py when the spool was segment files
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(numbered(0))
        spool.pop(1)
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        spool.append(numbered(1))
    with Spool(tmp_path, max_bytes=1 << 20) as spool:
        assert [int(b.values[0, 0]) for b in spool.peek(10)] == [1]
