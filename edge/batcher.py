"""Cuts a stream of samples into telemetry batches: at ``max_samples`` or when ``max_age_s`` old.

Age is measured in sample time by default (``age_clock="sample"``: the span of the timestamps,
so a simulated device running faster than wall time batches exactly as a real one would), or in
wall time (``age_clock="wall"``: since the batch's first sample arrived, by the injected
``clock``); a wall-clock batch is also cut by :meth:`Batcher.poll` when no sample arrives.

>>> import numpy as np
>>> b = Batcher("hp-1", "boot1", "heat_pump", ("a", "b"), max_samples=3, max_age_s=600.0)
>>> out = b.add(np.array([0.0, 60.0, 120.0, 180.0]), np.ones((4, 2)))
>>> [(batch.seq, batch.n_samples) for batch in out]
[(0, 3)]
>>> [batch.n_samples for batch in b.flush()]
[1]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from edge.schema import TelemetryBatch

__all__ = ["AgeClock", "Batcher"]

#: what ``max_age_s`` is measured in
AgeClock = Literal["sample", "wall"]


class Batcher:
    """Accumulates samples of one device and hands out numbered :class:`TelemetryBatch` es.

    >>> now = [0.0]
    >>> b = Batcher("hp-1", "b1", "heat_pump", ("a",), max_samples=100, max_age_s=5.0,
    ...             age_clock="wall", clock=lambda: now[0])
    >>> b.add(np.array([1.0]), np.ones((1, 1)))
    []
    >>> now[0] = 5.0
    >>> [batch.n_samples for batch in b.poll()]
    [1]
    """

    def __init__(
        self,
        device_id: str,
        boot_id: str,
        product: str,
        fields: tuple[str, ...],
        max_samples: int = 60,
        max_age_s: float = 600.0,
        firmware: str | None = None,
        age_clock: AgeClock = "sample",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_id = device_id
        self.boot_id = boot_id
        self.product = product
        self.fields = fields
        self.max_samples = max_samples
        self.max_age_s = max_age_s
        self.firmware = firmware
        self.age_clock: AgeClock = age_clock
        self._clock = clock
        self._opened_at = 0.0
        self.next_seq = 0
        self._t: list[float] = []
        self._rows: list[list[float | None]] = []

    def add(self, t: NDArray[np.float64], values: NDArray[np.float64]) -> list[TelemetryBatch]:
        """Add samples (rows of ``values`` at times ``t``); return the batches that are complete."""
        done: list[TelemetryBatch] = []
        wall = self.age_clock == "wall"
        for ts, row in zip(t.tolist(), values.tolist(), strict=True):
            if self._t and (
                self._clock() - self._opened_at >= self.max_age_s if wall
                else ts - self._t[0] >= self.max_age_s
            ):
                done.append(self._cut())
            if not self._t and wall:
                self._opened_at = self._clock()
            self._t.append(ts)
            self._rows.append([v if math.isfinite(v) else None for v in row])
            if len(self._t) >= self.max_samples:
                done.append(self._cut())
        return done

    def poll(self) -> list[TelemetryBatch]:
        """The pending batch if it is due by the wall clock (always none in sample time)."""
        if self._t and self.age_clock == "wall" \
                and self._clock() - self._opened_at >= self.max_age_s:
            return [self._cut()]
        return []

    @property
    def pending(self) -> list[tuple[float, list[float | None]]]:
        """The samples waiting for the next cut: ``(t, row)`` pairs, oldest first."""
        return list(zip(self._t, self._rows, strict=True))

    def flush(self) -> list[TelemetryBatch]:
        """Whatever is pending, as a batch (none when empty)."""
        return [self._cut()] if self._t else []

    def _cut(self) -> TelemetryBatch:
        batch = TelemetryBatch(
            device_id=self.device_id,
            boot_id=self.boot_id,
            seq=self.next_seq,
            product=self.product,
            firmware=self.firmware,
            fields=list(self.fields),
            t=self._t,
            values=self._rows,
        )
        self.next_seq += 1
        self._t, self._rows = [], []
        return batch
