"""A store that keeps nothing, for runs that never read history back.

The simulator's evaluation and the throughput benchmark write through it; tests build their
up-or-down stores on it and override only :meth:`NullStore.write_many`.

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> store = NullStore()
>>> values = np.zeros((2, 1))
>>> store.write(ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(2.0), values, values))
>>> store.batches, store.count_samples(), store.read("acme", "hp-1", 0, 10).fields
(1, 0, ())
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.events import DetectorEvent, ScoredBatch
from core.store.base import SeriesFrame

__all__ = ["NullStore"]


class NullStore:
    """Counts the batches written and discards them; every read finds nothing."""

    def __init__(self) -> None:
        #: batches written so far
        self.batches = 0

    def write(self, batch: ScoredBatch) -> None:
        """Discard one batch."""
        self.write_many([batch])

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Discard the batches."""
        self.batches += len(batches)

    def read(self, tenant: str, device_id: str, start: float, stop: float,
             every_s: float = 0.0) -> SeriesFrame:
        """Nothing was kept."""
        empty = np.zeros((0, 0))
        return SeriesFrame((), np.zeros(0), empty, empty)

    def read_events(self, tenant: str, device_id: str, start: float,
                    stop: float) -> tuple[DetectorEvent, ...]:
        """Nothing was kept."""
        return ()

    def product_of(self, tenant: str, device_id: str) -> str | None:
        """Nothing was kept."""
        return None

    def count_samples(self, tenant: str | None = None) -> int:
        """Nothing was kept."""
        return 0

    def close(self) -> None:
        """Nothing to release."""
