"""The time-series store interface every implementation satisfies.

Core writes each :class:`~core.events.ScoredBatch` (values and anomaly scores); the console,
re-scoring and case evidence read history back. Implementations: :mod:`core.store.embedded`
(a local SQLite file, the default) and the InfluxDB one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from core.errors import StoreError, StoreRejectedError
from core.events import DetectorEvent, ScoredBatch

__all__ = ["HistoryStore", "SeriesFrame", "StoreError", "StoreRejectedError", "TimeSeriesStore"]


@dataclass(frozen=True, slots=True)
class SeriesFrame:
    """Stored history of one device: one row per timestamp, one column per field."""

    fields: tuple[str, ...]
    t: NDArray[np.float64]
    values: NDArray[np.float64]
    scores: NDArray[np.float64]


class TimeSeriesStore(Protocol):
    """Write batches; read a device's history back."""

    def write(self, batch: ScoredBatch) -> None:
        """Store the values and scores of one scored batch (idempotent for the same samples)."""

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History of one device in [start, stop); ``every_s`` > 0 averages into buckets."""

    def count_samples(self, tenant: str | None = None) -> int:
        """Number of distinct (device, timestamp) samples stored."""

    def close(self) -> None:
        """Flush and release resources."""


class HistoryStore(TimeSeriesStore, Protocol):
    """A store that also writes many batches at once and gives back the detector onsets.

    Every implementation in :mod:`core.store` is one; the contract suite
    (``tests/integration/test_store_contract.py``) holds them to it.
    """

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Store several batches, in as few round trips as the store allows."""

    def read_events(
        self, tenant: str, device_id: str, start: float, stop: float
    ) -> tuple[DetectorEvent, ...]:
        """Detector onsets of one device in [start, stop), oldest first."""

    def product_of(self, tenant: str, device_id: str) -> str | None:
        """The product a device's samples were stored under, None if it has none stored."""
