"""The time-series store interface every implementation satisfies.

Core writes each :class:`~core.events.ScoredBatch` (values and anomaly scores); the console,
re-scoring and case evidence read history back. Implementations: :mod:`core.store.embedded`
(a local SQLite file, the default) and the InfluxDB one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from core.events import ScoredBatch

__all__ = ["SeriesFrame", "StoreError", "TimeSeriesStore"]


class StoreError(Exception):
    """The store could not take or give data (unreachable, refused, timed out)."""


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
