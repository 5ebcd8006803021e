"""Slow drift: two-sided Page–Hinkley test on standardised residuals, plus a trend estimate.

The baseline (EWMA level and spread) learns slowly; the cumulative sums of standardised
deviations beyond ``delta`` grow while the series creeps away from it and score as they pass
``threshold``. Beside it a fast level and its slope (per second when times are given, else per
sample) give :meth:`Drift.time_to_limit`, the predicted time until a limit is crossed;
``trend_only=True`` keeps just the trend (scores stay 0), for an ensemble that wants the time
to a limit without the test.

>>> import numpy as np
>>> rng = np.random.default_rng(4)
>>> det = Drift(capacity=1)
>>> _ = det.update([0], rng.normal(20.0, 0.5, (600, 1)))
>>> creep = 20.0 + 0.02 * np.arange(300.0) + rng.normal(0, 0.5, 300)
>>> s = det.update([0], creep[:, None])
>>> bool(s[:50].max() < 0.5), bool(s[-1, 0] > 0.9)
(True, True)
>>> ttl = det.time_to_limit(np.array([0]), hi=np.array([40.0]))
>>> bool(100 < ttl[0] < 1000)                            # about (40 - 26) / 0.02 samples
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Drift", "drift_update"]

_MAD_TO_SIGMA = 1.2533141373155001


@numba.njit(cache=True, nogil=True, error_model="numpy")
def drift_update(
    mean: NDArray[np.float64], spread: NDArray[np.float64], count: NDArray[np.int64],
    up: NDArray[np.float64], down: NDArray[np.float64], level: NDArray[np.float64],
    slope: NDArray[np.float64], last_t: NDArray[np.float64],
    slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64],
    out: NDArray[np.float64], has_t: bool, alpha: float, fast: float, warmup: int,
    delta: float, threshold: float, trend_only: bool,
) -> None:
    """Score then learn ``x`` (ticks × columns); scores into ``out``."""
    n_ticks, n_cols = x.shape
    h2 = threshold * threshold
    for j in range(n_cols):
        s = slots[j]
        m, sp, c, u, dn = mean[s], spread[s], count[s], up[s], down[s]  # locals for the block
        lv, sl, lt = level[s], slope[s], last_t[s]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            if not math.isfinite(v):
                continue
            ti = t[i] if has_t else float(c)
            if c == 0:
                m = v
                lv = v
                lt = ti
                c = 1
                continue
            if not trend_only:
                sc = max(sp * _MAD_TO_SIGMA, 1e-9 * (1.0 + abs(m)))
                z = min(max((v - m) / sc, -5.0), 5.0)
                if c >= warmup:
                    u = max(0.0, u + z - delta)
                    dn = max(0.0, dn - z - delta)
                    g = max(u, dn)
                    out[i, j] = g * g / (g * g + h2)
                a = max(alpha, 1.0 / (c + 1.0))
                dev = v - m
                lim = 3.0 * sc if c >= warmup else abs(dev)
                m += a * min(max(dev, -lim), lim)
                sp += a * (min(abs(dev), lim) - sp)
            dt = ti - lt
            new_level = lv + max(fast, 1.0 / (c + 1.0)) * (v - lv)
            if dt > 0.0:
                sl += fast * ((new_level - lv) / dt - sl)
                lt = ti
            lv = new_level
            c += 1
        mean[s], spread[s], count[s], up[s], down[s] = m, sp, c, u, dn
        level[s], slope[s], last_t[s] = lv, sl, lt


class Drift(SoADetector):
    """Page–Hinkley drift detector with a trend estimate, for many series."""

    name: ClassVar[str] = "drift"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "mean": (np.float64, (), 0.0),
        "spread": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
        "up": (np.float64, (), 0.0),
        "down": (np.float64, (), 0.0),
        "level": (np.float64, (), 0.0),
        "slope": (np.float64, (), 0.0),
        "last_t": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 2000.0,
                 trend_half_life: float = 50.0, warmup: int = 300, delta: float = 0.5,
                 threshold: float = 25.0, trend_only: bool = False) -> None:
        self.trend_only = trend_only
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.fast = 1.0 - 0.5 ** (1.0 / trend_half_life)
        self.warmup = warmup
        self.delta = delta
        self.threshold = threshold
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        tt = np.zeros(x.shape[0]) if t is None else t
        drift_update(a["mean"], a["spread"], a["count"], a["up"], a["down"], a["level"],
                     a["slope"], a["last_t"], slots, x, tt, out, t is not None, self.alpha,
                     self.fast, self.warmup, self.delta, self.threshold, self.trend_only)

    def time_to_limit(
        self, slots: NDArray[np.int64], lo: NDArray[np.float64] | None = None,
        hi: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Predicted time (s, or samples without times) until each series crosses a limit.

        ``inf`` when the trend points away from every limit (or is flat), 0 when past one.
        """
        self._ensure(slots)
        level = self._arrays["level"][slots]
        slope = self._arrays["slope"][slots]
        lo_a = np.full(level.shape, -np.inf) if lo is None else np.asarray(lo, dtype=np.float64)
        hi_a = np.full(level.shape, np.inf) if hi is None else np.asarray(hi, dtype=np.float64)
        out = np.full(level.shape, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = (slope > 0) & np.isfinite(hi_a)
            down = (slope < 0) & np.isfinite(lo_a)
            out = np.where(up, np.maximum(hi_a - level, 0.0) / slope, out)
            out = np.where(down, np.maximum(level - lo_a, 0.0) / -slope, out)
        return np.asarray(out, dtype=np.float64)
