"""Cuts a stream of samples into telemetry batches: at ``max_samples`` or when ``max_age_s`` old.

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

import numpy as np
from numpy.typing import NDArray

from edge.schema import TelemetryBatch

__all__ = ["Batcher"]


class Batcher:
    """Accumulates samples of one device and hands out numbered :class:`TelemetryBatch` es.

    Age is measured in sample time (the timestamps), so a simulated device running faster than
    wall time batches exactly as a real one would.
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
    ) -> None:
        self.device_id = device_id
        self.boot_id = boot_id
        self.product = product
        self.fields = fields
        self.max_samples = max_samples
        self.max_age_s = max_age_s
        self.firmware = firmware
        self.next_seq = 0
        self._t: list[float] = []
        self._rows: list[list[float | None]] = []

    def add(self, t: NDArray[np.float64], values: NDArray[np.float64]) -> list[TelemetryBatch]:
        """Add samples (rows of ``values`` at times ``t``); return the batches that are complete."""
        done: list[TelemetryBatch] = []
        for ts, row in zip(t.tolist(), values.tolist(), strict=True):
            if self._t and ts - self._t[0] >= self.max_age_s:
                done.append(self._cut())
            self._t.append(ts)
            self._rows.append([v if math.isfinite(v) else None for v in row])
            if len(self._t) >= self.max_samples:
                done.append(self._cut())
        return done

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
