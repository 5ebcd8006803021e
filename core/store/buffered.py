"""The store's ``Running…`` wrapper: no write is lost while the store is down.

:class:`BufferedStore` sits in front of any store. When a write fails with
:class:`~core.store.base.StoreError` (refused, timed out, 5xx) the batch goes to an on-disk
:class:`~core.store.spool.Spool`, and so does every later batch until the spool has been replayed,
so the store receives batches in the order they were written. Replay is tried on later writes
(and by :meth:`BufferedStore.flush`) once a retry delay has passed: full-jitter exponential
backoff, uniform in [0, min(max_delay, base · 2^failures)), measured on the injected clock. The
spool is bounded; a batch that does not fit is dropped (policy ``drop_newest``) and counted.

>>> import tempfile, numpy as np
>>> from core.events import ScoredBatch
>>> from core.store.embedded import EmbeddedStore
>>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.array([1.0]), np.array([[2.0]]),
...                     np.array([[0.0]]))
>>> with tempfile.TemporaryDirectory() as tmp:
...     store = BufferedStore(EmbeddedStore(Path(tmp) / "fw.sqlite3"), Path(tmp) / "spool")
...     store.write(batch)
...     print(store.count_samples(), store.stats()["spooled_batches"])
...     store.close()
1 0
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from core.events import DetectorEvent, ScoredBatch
from core.store.base import HistoryStore, SeriesFrame, StoreError, StoreRejectedError
from core.store.spool import Spool
from edge.backoff import full_jitter

__all__ = ["DROP_POLICY", "BufferedStore"]

log = logging.getLogger(__name__)

#: what happens to a batch that does not fit into a full spool
DROP_POLICY = "drop_newest"


class BufferedStore:
    """A store that spools writes to disk while ``inner`` is down and replays them in order.

    Reads go straight to ``inner`` (they raise :class:`StoreError` while it is down and do not
    see spooled batches). One caller at a time; nothing runs in the background: replay happens
    inside :meth:`write`, :meth:`write_many` and :meth:`flush`.
    """

    def __init__(
        self,
        inner: HistoryStore,
        spool_dir: Path,
        max_bytes: int = 256 * 1024 * 1024,
        *,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        replay_batches: int = 256,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self._spool = Spool(spool_dir, max_bytes)
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._replay_batches = replay_batches
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._failures = 0  # consecutive failed attempts
        self._next_try = 0.0
        self._counts = dict.fromkeys(
            (
                "written_batches", "spooled_batches", "replayed_batches", "dropped_batches",
                "dropped_samples", "rejected_batches", "failed_attempts",
            ),
            0,
        )
        if len(self._spool):
            log.info("spool %s holds %d batches from an earlier run", spool_dir, len(self._spool))

    def __enter__(self) -> BufferedStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def write(self, batch: ScoredBatch) -> None:
        """Write ``batch`` to the store, or to the spool if the store is down or behind."""
        self.write_many([batch])

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Write batches in order; raises only :class:`StoreRejectedError` (refused for good)."""
        if not batches:
            return
        self._replay()
        if len(self._spool) or not self._due():
            self._to_spool(batches)
            return
        try:
            self.inner.write_many(batches)
        except StoreRejectedError:
            self._counts["rejected_batches"] += len(batches)
            raise
        except StoreError as exc:
            self._failed(exc)
            self._to_spool(batches)
            return
        self._succeeded()
        self._counts["written_batches"] += len(batches)

    def flush(self, timeout_s: float = 0.0) -> bool:
        """Replay the spool until it is empty or ``timeout_s`` passed; True if it is empty.

        With ``timeout_s`` = 0 it makes at most one attempt, and only if a retry is due.
        """
        deadline = self._clock() + timeout_s
        while True:
            self._replay()
            now = self._clock()
            if not len(self._spool) or now >= deadline:
                return not len(self._spool)
            self._sleep(max(0.0, min(self._next_try, deadline) - now))

    def _replay(self) -> None:
        while len(self._spool) and self._due():
            batches = self._spool.peek(self._replay_batches)
            try:
                self.inner.write_many(batches)
            except StoreRejectedError as exc:
                # one refused batch must not block the queue: find it, drop it, keep the rest
                log.error("store refused spooled data for good, dropping it: %s", exc)
                self._replay_one_by_one(batches)
                continue
            except StoreError as exc:
                self._failed(exc)
                return
            self._spool.pop(len(batches))
            self._counts["replayed_batches"] += len(batches)
            self._succeeded()

    def _replay_one_by_one(self, batches: list[ScoredBatch]) -> None:
        for batch in batches:
            try:
                self.inner.write(batch)
            except StoreRejectedError:
                self._counts["rejected_batches"] += 1
            except StoreError as exc:
                self._failed(exc)
                return
            else:
                self._counts["replayed_batches"] += 1
            self._spool.pop(1)

    def _to_spool(self, batches: Sequence[ScoredBatch]) -> None:
        with self._spool.transaction():  # one commit for the lot
            self._spool_each(batches)

    def _spool_each(self, batches: Sequence[ScoredBatch]) -> None:
        for batch in batches:
            if self._spool.append(batch):
                self._counts["spooled_batches"] += 1
            else:
                self._counts["dropped_batches"] += 1
                self._counts["dropped_samples"] += batch.n_samples
                if self._counts["dropped_batches"] == 1:
                    log.error("spool full (%d bytes): dropping new batches", self._spool.max_bytes)

    # -- backoff -------------------------------------------------------------------------------

    def _due(self) -> bool:
        return self._clock() >= self._next_try

    def _failed(self, exc: StoreError) -> None:
        if self._failures == 0:
            log.warning("store down, spooling writes to %s: %s", self._spool.directory, exc)
        self._failures += 1
        self._counts["failed_attempts"] += 1
        self._next_try = self._clock() + full_jitter(
            self._failures - 1, self._base_delay_s, self._max_delay_s, self._rng)

    def _succeeded(self) -> None:
        if self._failures:
            log.warning("store back after %d failed attempts", self._failures)
        self._failures = 0
        self._next_try = 0.0

    # -- reading and the rest ------------------------------------------------------------------

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History from the store (spooled batches are not seen until replayed)."""
        return self.inner.read(tenant, device_id, start, stop, every_s)

    def read_events(
        self, tenant: str, device_id: str, start: float, stop: float
    ) -> tuple[DetectorEvent, ...]:
        """Detector onsets from the store."""
        return self.inner.read_events(tenant, device_id, start, stop)

    def product_of(self, tenant: str, device_id: str) -> str | None:
        """The device's product, from the store."""
        return self.inner.product_of(tenant, device_id)

    def count_samples(self, tenant: str | None = None) -> int:
        """Samples in the store (spooled ones not counted)."""
        return self.inner.count_samples(tenant)

    def stats(self) -> dict[str, int]:
        """Self-metrics: batches written, spooled, replayed, dropped; what is pending.

        ``dropped_*`` counts batches the full spool could not take (:data:`DROP_POLICY`),
        ``rejected_batches`` those the store refused for good.
        """
        return {
            **self._counts,
            "pending_batches": len(self._spool),
            "pending_samples": self._spool.n_samples,
            "pending_bytes": self._spool.nbytes,
            "damaged_records": self._spool.damaged,
            "consecutive_failures": self._failures,
            "store_up": int(self._failures == 0),
        }

    def close(self) -> None:
        """Try one last replay if due, then close; what is still spooled stays for next start."""
        try:
            self._replay()
        finally:
            self._spool.close()
            self.inner.close()
