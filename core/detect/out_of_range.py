"""Out of range: a value beyond the limits the product defines for the field.

Limits come from configuration (``set_limits``), not learning; a series without limits never
scores. Any crossing scores at least 0.5, rising towards 1 with the excess over 5 % of the range.

>>> import numpy as np
>>> det = OutOfRange(capacity=2)
>>> det.set_limits([0, 1], lo=[0.0, -np.inf], hi=[100.0, 60.0])
>>> det.update([0, 1], np.array([[50.0, 20.0], [130.0, 61.0]])).round(2).tolist()
[[0.0, 0.0], [0.93, 0.62]]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["OutOfRange", "out_of_range_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def out_of_range_update(
    lo: NDArray[np.float64], hi: NDArray[np.float64], slots: NDArray[np.int64],
    x: NDArray[np.float64], out: NDArray[np.float64],
) -> None:
    """Score ``x`` (ticks × columns) against the limits of each slot."""
    n_ticks, n_cols = x.shape
    for j in range(n_cols):
        s = slots[j]
        span = hi[s] - lo[s]
        margin = 0.05 * span if math.isfinite(span) else 0.05 * max(
            abs(lo[s]) if math.isfinite(lo[s]) else 0.0,
            abs(hi[s]) if math.isfinite(hi[s]) else 0.0, 1.0)
        for i in range(n_ticks):
            v = x[i, j]
            excess = 0.0
            if math.isfinite(v):
                excess = max(v - hi[s], lo[s] - v, 0.0)
            out[i, j] = 0.5 + 0.5 * excess / (excess + margin) if excess > 0.0 else 0.0


class OutOfRange(SoADetector):
    """Fixed-limit check for many series; limits default to ±inf (never fires)."""

    name: ClassVar[str] = "out_of_range"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "lo": (np.float64, (), -np.inf),
        "hi": (np.float64, (), np.inf),
    }

    def set_limits(
        self, slots: NDArray[np.int64] | list[int],
        lo: NDArray[np.float64] | list[float], hi: NDArray[np.float64] | list[float],
    ) -> None:
        """Set the limits of ``slots`` (use ±inf for an open side)."""
        s = np.asarray(slots, dtype=np.int64)
        self._ensure(s)
        self._arrays["lo"][s] = np.asarray(lo, dtype=np.float64)
        self._arrays["hi"][s] = np.asarray(hi, dtype=np.float64)

    def limits(self, slots: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The (lo, hi) limits of ``slots``."""
        self._ensure(slots)
        return self._arrays["lo"][slots].copy(), self._arrays["hi"][slots].copy()

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        out_of_range_update(self._arrays["lo"], self._arrays["hi"], slots, x, out)
