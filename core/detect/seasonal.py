"""Seasonal z-score: distance of a value from what this series does at this time of day.

Each series keeps, per time-of-day bin, a learned level and spread; a value far from its bin's
level scores high even when it is normal for the day as a whole (a missing daily peak, a load
at 3 a.m.). The bin's spread is floored by a fraction of the series' overall seasonal residual,
so bins that happened to be calm do not turn every wiggle into an alarm. Needs sample times.

>>> import numpy as np
>>> t = np.arange(0.0, 14 * 86400.0, 900.0)                 # two weeks, every 15 minutes
>>> daily = 10.0 + 5.0 * np.sin(2 * np.pi * t / 86400.0)
>>> rng = np.random.default_rng(3)
>>> det = Seasonal(capacity=1)
>>> _ = det.update([0], (daily + rng.normal(0, 0.1, t.size))[:, None], t)
>>> evening = t[-1] + 900.0 * 73                              # 18:00, the daily low
>>> s = det.update([0], np.array([[15.0]]), np.array([evening]))
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

__all__ = ["Seasonal", "seasonal_update"]

_MAD_TO_SIGMA = 1.2533141373155001


@numba.njit(cache=True, nogil=True, error_model="numpy")
def seasonal_update(
    level: NDArray[np.float64], spread: NDArray[np.float64], seen: NDArray[np.int64],
    resid: NDArray[np.float64], count: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64],
    out: NDArray[np.float64],
    period: float, bin_alpha: float, alpha: float, min_seen: int, resid_floor: float,
    half_z: float,
) -> None:
    """Score then learn ``x`` at times ``t`` against per-bin levels; scores into ``out``."""
    n_ticks, n_cols = x.shape
    n_bins = level.shape[1]
    h2 = half_z * half_z
    # every series of the block shares the sample times: find each tick's bin once
    bins = np.full(n_ticks, -1, dtype=np.int64)
    for i in range(n_ticks):
        if math.isfinite(t[i]):
            bins[i] = min(max(int((t[i] % period) / period * n_bins), 0), n_bins - 1)
    for j in range(n_cols):
        s = slots[j]
        res, cnt = resid[s], count[s]  # locals for the block
        for i in range(n_ticks):
            v = x[i, j]
            b = bins[i]
            if not math.isfinite(v) or b < 0:
                out[i, j] = 0.0
                continue
            c = seen[s, b]
            z = 0.0
            if c >= min_seen:
                floor = 1e-9 * (1.0 + abs(level[s, b]))
                sc = max(spread[s, b] * _MAD_TO_SIGMA, resid_floor * res, floor)
                z = abs(v - level[s, b]) / sc
            out[i, j] = z * z / (z * z + h2)
            if c == 0:
                level[s, b] = v
                spread[s, b] = 0.0
            else:
                a2 = max(bin_alpha, 1.0 / (c + 1.0))
                d = v - level[s, b]
                level[s, b] += a2 * d
                spread[s, b] += a2 * (abs(d) - spread[s, b])
                a = max(alpha, 1.0 / (cnt + 1.0))
                res += a * (abs(d) - res)
            seen[s, b] = c + 1
            cnt += 1
        resid[s], count[s] = res, cnt


class Seasonal(SoADetector):
    """Time-of-day profile detector (``bins`` bins per ``period`` seconds) for many series."""

    name: ClassVar[str] = "seasonal"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "level": (np.float64, (0,), 0.0),
        "spread": (np.float64, (0,), 0.0),
        "seen": (np.int64, (0,), 0),
        "resid": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(
        self, capacity: int = 1024, bins: int = 96, period_s: float = 86400.0,
        bin_half_life: float = 5.0, half_life: float = 500.0, min_seen: int = 3,
        resid_floor: float = 0.2, half_z: float = 3.0,
    ) -> None:
        self.bins = bins
        self.period_s = period_s
        self.bin_alpha = 1.0 - 0.5 ** (1.0 / bin_half_life)
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.min_seen = min_seen
        self.resid_floor = resid_floor
        self.half_z = half_z
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        return (self.bins,) if name in ("level", "spread", "seen") else ()

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        if t is None:  # without times there is no phase: score nothing, learn nothing
            out[...] = 0.0
            return
        a = self._arrays
        seasonal_update(a["level"], a["spread"], a["seen"], a["resid"], a["count"], slots, x, t,
                        out, self.period_s, self.bin_alpha, self.alpha, self.min_seen,
                        self.resid_floor, self.half_z)
