"""Extreme: a value further from the series' level than any value it has shown before.

Keeps a robust EWMA level and spread and the record |z| seen so far (after a short settling
period), of the samples or, with ``smooth_half_life``, of an EWMA of them (a level the series
has never held, rather than a single value it never took). A sample whose |z| beats the record
by ``margin`` and is at least ``z_min`` scores at least 0.5, towards 1 as it beats the record
further; the record then moves up, so an unprecedented value fires once and its repetitions do
not. Record-breaking is a precise signal even on spiky series, whose ordinary spikes set a high
record early on.

>>> import numpy as np
>>> rng = np.random.default_rng(8)
>>> det = Extreme(capacity=1, warmup=100)
>>> x = rng.normal(0.0, 1.0, (1000, 1)); x[600, 0] = 9.0; x[800, 0] = 9.0
>>> s = det.update([0], x)
>>> bool(s[600, 0] >= 0.5), float(s[800, 0]), float(s[:600].max())
(True, 0.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Extreme", "extreme_update"]

_MAD_TO_SIGMA = 1.2533141373155001
_SETTLE = 30


@numba.njit(cache=True, nogil=True, error_model="numpy")
def extreme_update(
    mean: NDArray[np.float64], spread: NDArray[np.float64], record: NDArray[np.float64],
    smooth: NDArray[np.float64], count: NDArray[np.int64], slots: NDArray[np.int64],
    x: NDArray[np.float64], out: NDArray[np.float64], alpha: float, warmup: int,
    margin: float, z_min: float, smooth_alpha: float,
) -> None:
    """Score then learn ``x`` (ticks × columns); scores into ``out``."""
    n_ticks, n_cols = x.shape
    for j in range(n_cols):
        s = slots[j]
        # the series' state lives in locals for the block: the compiler cannot keep array
        # elements in registers across the stores to ``out``
        m, sp, rec, f, c = mean[s], spread[s], record[s], smooth[s], count[s]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            if not math.isfinite(v):
                continue
            if c == 0:
                m = v
                f = v
                c = 1
                continue
            f += smooth_alpha * (v - f)
            sc = max(sp * _MAD_TO_SIGMA, 1e-9 * (1.0 + abs(m)))
            dev = f - m
            z = abs(dev) / sc
            bar = margin * rec
            if c >= warmup and z >= z_min and z > bar:
                out[i, j] = 1.0 - 0.5 * max(bar, z_min) / z
            if c >= _SETTLE:
                rec = max(rec, z)
            a = max(alpha, 1.0 / (c + 1.0))
            lim = 3.0 * sc if c >= _SETTLE else abs(dev)
            m += a * min(max(dev, -lim), lim)
            sp += a * (min(abs(dev), lim) - sp)
            c += 1
        mean[s], spread[s], record[s], smooth[s], count[s] = m, sp, rec, f, c


class Extreme(SoADetector):
    """Record-breaking deviation detector for many series."""

    name: ClassVar[str] = "extreme"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "mean": (np.float64, (), 0.0),
        "spread": (np.float64, (), 0.0),
        "record": (np.float64, (), 0.0),
        "smooth": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 2000.0, warmup: int = 300,
                 margin: float = 1.2, z_min: float = 5.0,
                 smooth_half_life: float = 0.0) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.smooth_alpha = (1.0 - 0.5 ** (1.0 / smooth_half_life) if smooth_half_life > 0
                             else 1.0)
        self.warmup = warmup
        self.margin = margin
        self.z_min = z_min
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        extreme_update(a["mean"], a["spread"], a["record"], a["smooth"], a["count"], slots, x,
                       out, self.alpha, self.warmup, self.margin, self.z_min, self.smooth_alpha)
