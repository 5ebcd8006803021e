"""Rate of change: robust z-score of the step from the previous sample.

Catches a jump or a fall that is fast for this series even when the new level is still in its
usual range (a valve slamming, a sensor re-seating). Learns the typical step with a clipped EWMA.

>>> import numpy as np
>>> rng = np.random.default_rng(11)
>>> det = RateOfChange(capacity=1, warmup=50)
>>> _ = det.update([0], np.cumsum(rng.normal(0, 0.1, (500, 1)), axis=0))
>>> s = det.update([0], np.array([[50.0]]))
>>> bool(s[0, 0] > 0.9)
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["RateOfChange", "rate_update"]

_MAD_TO_SIGMA = 1.2533141373155001


@numba.njit(cache=True, nogil=True, error_model="numpy")
def rate_update(
    last: NDArray[np.float64], mean: NDArray[np.float64], spread: NDArray[np.float64],
    count: NDArray[np.int64], slots: NDArray[np.int64], x: NDArray[np.float64],
    out: NDArray[np.float64], alpha: float, warmup: int, clip: float, half_z: float,
) -> None:
    """Score then learn the steps of ``x`` (ticks × columns); scores into ``out``."""
    n_ticks, n_cols = x.shape
    h2 = half_z * half_z
    for j in range(n_cols):
        s = slots[j]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            if not math.isfinite(v):
                continue
            c = count[s]
            if c == 0:
                last[s] = v
                count[s] = 1
                continue
            step = v - last[s]
            last[s] = v
            sc = max(spread[s] * _MAD_TO_SIGMA, 1e-9 * (1.0 + abs(v)))
            dev = step - mean[s]
            z = abs(dev) / sc
            if c >= warmup:
                out[i, j] = z * z / (z * z + h2)
            a = max(alpha, 1.0 / c)
            lim = clip * sc if c >= warmup else abs(dev)
            mean[s] += a * min(max(dev, -lim), lim)
            spread[s] += a * (min(abs(dev), lim) - spread[s])
            count[s] = c + 1


class RateOfChange(SoADetector):
    """Step-size z-score detector for many series."""

    name: ClassVar[str] = "rate_of_change"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "last": (np.float64, (), 0.0),
        "mean": (np.float64, (), 0.0),
        "spread": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 500.0, warmup: int = 120,
                 clip: float = 4.0, half_z: float = 3.0) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.clip = clip
        self.half_z = half_z
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        rate_update(a["last"], a["mean"], a["spread"], a["count"], slots, x, out,
                    self.alpha, self.warmup, self.clip, self.half_z)
