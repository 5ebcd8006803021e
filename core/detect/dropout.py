"""Dropout: samples stop arriving (missing values, or a gap in time).

Counts consecutive missing (NaN) samples per series and, when times are given, compares the
gap since the last good sample with the series' usual interval. Scores 0.5 once a gap is
``factor`` times the longest the series has shown during warm-up (and at least ``min_gap``
intervals), rising towards 1 as it grows. The score lands on the missing samples themselves.

>>> import numpy as np
>>> det = Dropout(capacity=1)
>>> x = np.ones((200, 1)); x[150:170] = np.nan
>>> s = det.update([0], x)
>>> float(s[:150].max()), bool(s[160, 0] >= 0.5)
(0.0, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Dropout", "dropout_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def dropout_update(
    missing: NDArray[np.int64], longest: NDArray[np.int64], count: NDArray[np.int64],
    last_t: NDArray[np.float64], interval: NDArray[np.float64],
    slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64],
    out: NDArray[np.float64], has_t: bool, factor: float, min_gap: int, warmup: int,
) -> None:
    """Score gaps in ``x`` (ticks × columns; NaN = missing) and, with ``has_t``, in ``t``."""
    n_ticks, n_cols = x.shape
    for j in range(n_cols):
        s = slots[j]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            gap = 0.0
            if not math.isfinite(v):
                missing[s] += 1
                gap = float(missing[s])
            else:
                if count[s] < warmup:
                    longest[s] = max(longest[s], missing[s])
                missing[s] = 0
                if has_t and math.isfinite(t[i]):
                    if count[s] > 0:
                        dt = t[i] - last_t[s]
                        if interval[s] > 0.0:
                            gap = dt / interval[s] - 1.0
                        if dt > 0.0:
                            a = max(0.01, 1.0 / (count[s] + 1.0))
                            interval[s] += a * (min(dt, 3.0 * interval[s]) - interval[s]) \
                                if interval[s] > 0.0 else dt
                    last_t[s] = t[i]
                count[s] += 1
            if count[s] < warmup:
                continue
            limit = max(factor * longest[s], float(min_gap))
            if gap > limit:
                out[i, j] = 1.0 - 0.5 * limit / gap


class Dropout(SoADetector):
    """Missing-data detector for many series."""

    name: ClassVar[str] = "dropout"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "missing": (np.int64, (), 0),
        "longest": (np.int64, (), 0),
        "count": (np.int64, (), 0),
        "last_t": (np.float64, (), 0.0),
        "interval": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, factor: float = 3.0, min_gap: int = 5,
                 warmup: int = 100) -> None:
        self.factor = factor
        self.min_gap = min_gap
        self.warmup = warmup
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        tt = np.zeros(x.shape[0]) if t is None else t
        dropout_update(a["missing"], a["longest"], a["count"], a["last_t"], a["interval"],
                       slots, x, tt, out, t is not None, self.factor, self.min_gap, self.warmup)
