"""BufferedStore as a state machine: whatever it accepts reaches the store once, in order.

Writes, outages, recoveries, the clock moving on and restarts (close, open the spool again)
interleave at random; a small spool cap makes drops happen too. At every step the store has
received a prefix of the accepted batches and the spool holds exactly the rest.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.events import ScoredBatch
from core.store.base import StoreError
from core.store.buffered import BufferedStore
from core.store.null import NullStore
from core.store.spool import Spool, encode_record


def numbered(seq: int, n: int) -> ScoredBatch:
    values = np.full((n, 1), float(seq))
    return ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(n, dtype=np.float64),
                       values, values)


class SwitchableStore(NullStore):
    """Up or down on command; remembers the batch numbers that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True
        self.received: list[int] = []

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        if not self.up:
            raise StoreError("down")
        self.received.extend(int(batch.values[0, 0]) for batch in batches)


class Midpoint(random.Random):
    """Every full-jitter draw is half its ceiling."""

    def random(self) -> float:
        return 0.5


CAP = 6 * len(encode_record(numbered(0, 3)))


class BufferedStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="forewarn-spool-"))
        self.now = 0.0
        self.inner = SwitchableStore()
        self.store = self._open()
        self.accepted: list[int] = []
        self.next_seq = 0

    def _open(self) -> BufferedStore:
        return BufferedStore(self.inner, self.dir, CAP, base_delay_s=1.0, max_delay_s=4.0,
                             clock=lambda: self.now, sleep=self._sleep, rng=Midpoint())

    def _sleep(self, seconds: float) -> None:
        self.now += seconds

    @rule(n=st.integers(1, 5))
    def write(self, n: int) -> None:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        dropped = self.store.stats()["dropped_batches"]
        self.store.write(numbered(seq, n))
        if self.store.stats()["dropped_batches"] == dropped:
            self.accepted.append(seq)

    @rule()
    def outage(self) -> None:
        self.inner.up = False

    @rule()
    def recovery(self) -> None:
        self.inner.up = True

    @rule(seconds=st.floats(0.0, 10.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = self._open()

    @precondition(lambda self: self.inner.up)
    @rule()
    def flush(self) -> None:
        assert self.store.flush(timeout_s=60.0)
        assert self.inner.received == self.accepted

    @invariant()
    def nothing_lost_nothing_reordered(self) -> None:
        received = self.inner.received
        assert received == self.accepted[: len(received)]
        assert self.store.stats()["pending_batches"] == len(self.accepted) - len(received)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


BufferedStoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                                  deadline=None)
TestBufferedStore = BufferedStoreMachine.TestCase


class SpoolMachine(RuleBasedStateMachine):
    """The spool alone: appends, pops and restarts in any order keep exactly what was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="forewarn-spool-"))
        self.spool = Spool(self.dir, CAP)
        self.model: list[int] = []
        self.next_seq = 0

    @rule(n=st.integers(1, 3))
    def append(self, n: int) -> None:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        if self.spool.append(numbered(seq, n)):
            self.model.append(seq)

    @rule(k=st.integers(1, 4))
    def pop(self, k: int) -> None:
        self.spool.pop(k)
        del self.model[:k]

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool(self.dir, CAP)

    @invariant()
    def holds_exactly_the_model(self) -> None:
        assert [int(b.values[0, 0]) for b in self.spool.peek(100)] == self.model
        assert len(self.spool) == len(self.model) and self.spool.damaged == 0
        assert self.spool.nbytes <= CAP

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)


SpoolMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                          deadline=None)
TestSpool = SpoolMachine.TestCase
