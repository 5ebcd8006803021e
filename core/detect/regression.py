"""Regression residual: a field that is off *for what the device's other fields say*.

Each device's fields keep a slowly forgotten EWMA mean and covariance. For every sample, each
field is predicted from all the device's other fields present in that sample (the regression
coefficients come straight from the covariance: the standardised residual of field ``j`` is
``(P d)_j / sqrt(P_jj)`` with ``P`` the inverse covariance and ``d`` the deviation from the
mean), so "discharge temperature high for this compressor current and outdoor temperature" is
caught even while every field alone is within its daily range.

The residual is then averaged over two time scales, a short one for sudden faults (a failed
compressor, a stuck sensor) and a long one for slow drifts (a refrigerant leak that creeps
over days), each measured against its own slowly learned spread. The score is the larger of
the two: a *level* that stays high while the fault persists, which is what rules with a
``for`` duration need.

Learning is robust and slow: a sample whose residual is far out teaches the baseline little
(its weight falls with the square of how far out it is), and the forgetting half-life is days,
so a fault that ramps over a day or two is not absorbed as normal. A series scores nothing
until it has seen ``warmup`` samples (a full daily cycle at one sample a minute by default).
:meth:`Regression.rebaseline` re-anchors a device's levels (not its relations) after a change
that legitimately shifts a baseline, such as a firmware update. The columns of one ``update``
call must be one device's fields, always in the same order; at most ``max_fields`` of them
are related to each other (later ones score 0).

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> load = np.sin(np.arange(3000) / 100.0) + rng.normal(0, 0.3, 3000)
>>> x = np.c_[2.0 * load + 5.0, -load, 10.0 + load] + rng.normal(0, 0.05, (3000, 3))
>>> det = Regression(capacity=3, warmup=1000)
>>> s = det.update([0, 1, 2], x)
>>> float(s[:1000].max()), bool(s[1000:].max() < 0.8)           # quiet while it learns
(0.0, True)
>>> bad = x[:60].copy()
>>> bad[:, 1] += 1.0                                              # field 1 leaves the others
>>> s = det.update([0, 1, 2], bad)
>>> int(s[-1].argmax()), bool(s[-1, 1] > 0.9)
(1, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector, as_block

__all__ = ["Regression", "regression_update"]

#: E[min(Z², 4)] for a standard normal Z: keeps the winsorised variance unbiased
_WINSOR_MEAN = 0.9206


@numba.njit(cache=True, nogil=True)
def _inverse_spd(a: NDArray[np.float64], m: int, inv: NDArray[np.float64],
                 low: NDArray[np.float64]) -> bool:
    """Inverse of the symmetric positive definite ``a[:m, :m]`` into ``inv`` (Cholesky)."""
    for i in range(m):
        for j in range(i + 1):
            acc = a[i, j]
            for p in range(j):
                acc -= low[i, p] * low[j, p]
            if i == j:
                if acc <= 0.0:
                    return False
                low[i, i] = math.sqrt(acc)
            else:
                low[i, j] = acc / low[j, j]
    for c in range(m):  # solve L L^T inv[:, c] = e_c
        for i in range(m):
            acc = 1.0 if i == c else 0.0
            for p in range(i):
                acc -= low[i, p] * inv[p, c]
            inv[i, c] = acc / low[i, i]
        for i in range(m - 1, -1, -1):
            acc = inv[i, c]
            for p in range(i + 1, m):
                acc -= low[p, i] * inv[p, c]
            inv[i, c] = acc / low[i, i]
    return True


@numba.njit(cache=True, nogil=True)
def regression_update(
    mean: NDArray[np.float64], cov: NDArray[np.float64], count: NDArray[np.int64],
    short: NDArray[np.float64], long: NDArray[np.float64], short_var: NDArray[np.float64],
    long_var: NDArray[np.float64], level: NDArray[np.float64], anchor: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64],
    alpha: float, alpha_short: float, alpha_long: float, alpha_var: float, warmup: int,
    half_z: float, clip: float, ridge: float, anchor_alpha: float, short_floor: float,
    long_floor: float,
) -> None:
    """Score then learn one device's fields ``x`` (ticks × fields); levels into ``out``.

    A missing sample keeps its field's last level (the fault has not gone away because a
    reading was lost) and teaches nothing.
    """
    n_ticks, n_cols = x.shape
    k = min(n_cols, cov.shape[1])
    idx = np.zeros(k, dtype=np.int64)
    a = np.zeros((k, k))
    inv = np.zeros((k, k))
    low = np.zeros((k, k))
    d = np.zeros(k)
    z = np.zeros(k)
    h2 = half_z * half_z
    for i in range(n_ticks):
        m = 0
        ready = True
        for j in range(k):
            if math.isfinite(x[i, j]):
                idx[m] = j
                m += 1
                if count[slots[j]] < 2:
                    ready = False
        for j in range(n_cols):
            out[i, j] = level[slots[j]]
        if m == 0:
            continue
        for p in range(m):
            s = slots[idx[p]]
            d[p] = x[i, idx[p]] - mean[s]
            z[p] = 0.0
        worst = 0.0
        if ready and m >= 2:
            for p in range(m):
                sp = slots[idx[p]]
                for q in range(m):
                    sq = slots[idx[q]]
                    a[p, q] = 0.5 * (cov[sp, idx[q]] + cov[sq, idx[p]])
                a[p, p] = a[p, p] * (1.0 + ridge) + 1e-12 * (1.0 + mean[sp] * mean[sp])
            if _inverse_spd(a, m, inv, low):
                for p in range(m):
                    u = 0.0
                    for q in range(m):
                        u += inv[p, q] * d[q]
                    z[p] = min(max(u / math.sqrt(inv[p, p]), -50.0), 50.0)
                    worst = max(worst, abs(z[p]))
        r_max = 0.0
        for p in range(m):
            j = idx[p]
            s = slots[j]
            c = count[s]
            if anchor[s] > 0 or not ready or m < 2:
                continue
            # one wild reading must not hold the level up: clip what the averages see
            zc = min(max(z[p], -5.0 * clip), 5.0 * clip)
            short[s] += alpha_short * (zc - short[s])
            long[s] += alpha_long * (zc - long[s])
            if c < warmup // 2:
                continue
            if c < warmup:
                # spreads of the averages: plain means over the second half of the warm-up
                av = 1.0 / (c - warmup // 2 + 1.0)
                short_var[s] += av * (short[s] * short[s] - short_var[s])
                long_var[s] += av * (long[s] * long[s] - long_var[s])
                continue
            r_short = abs(short[s]) / math.sqrt(max(short_var[s], short_floor))
            r_long = abs(long[s]) / math.sqrt(max(long_var[s], long_floor))
            r = max(r_short, r_long)
            r_max = max(r_max, r)
            score = r * r / (r * r + h2)
            level[s] = score
            out[i, j] = score
            # winsorised at two spreads, so a fault cannot inflate them
            short_var[s] += alpha_var * (min(short[s] * short[s], 4.0 * short_var[s])
                                         / _WINSOR_MEAN - short_var[s])
            long_var[s] += alpha_var * (min(long[s] * long[s], 4.0 * long_var[s])
                                        / _WINSOR_MEAN - long_var[s])
        # learn: plain means over the warm-up, then slowly; while the device looks anomalous
        # (a far-out sample, or averages far from normal) it teaches the baseline little
        weight = 1.0
        if worst > clip:
            weight = (clip / worst) ** 2
        if r_max > half_z:
            weight = min(weight, (half_z / r_max) ** 4)
        for p in range(m):
            s = slots[idx[p]]
            c = count[s]
            if anchor[s] > 0:
                mean[s] += anchor_alpha * d[p]
                anchor[s] -= 1
                if anchor[s] == 0:
                    short[s] = 0.0
                    long[s] = 0.0
                count[s] = c + 1
                continue
            ap = 1.0 / (c + 1.0) if c < warmup else alpha * weight
            for q in range(m):
                cov[s, idx[q]] = (1.0 - ap) * (cov[s, idx[q]] + ap * d[p] * d[q])
            mean[s] += ap * d[p]
            count[s] = c + 1


class Regression(SoADetector):
    """Per-device regression residual detector; each ``update`` call holds one device's fields.

    Half-lives are in samples: ``half_life`` for the mean and covariance, ``short_half_life``
    and ``long_half_life`` for the two averages of the residual, ``spread_half_life`` for
    their spreads. ``half_z``: an average this many of its spreads away scores 0.5, twice
    that 0.8. ``clip``: residuals beyond this many sigma teach the baseline less.
    """

    name: ClassVar[str] = "regression"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "mean": (np.float64, (), 0.0),
        "cov": (np.float64, (8,), 0.0),
        "count": (np.int64, (), 0),
        "short": (np.float64, (), 0.0),
        "long": (np.float64, (), 0.0),
        "short_var": (np.float64, (), 1.0),
        "long_var": (np.float64, (), 1.0),
        "level": (np.float64, (), 0.0),
        "anchor": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 4320.0, warmup: int = 1440,
                 short_half_life: float = 5.0, long_half_life: float = 120.0,
                 spread_half_life: float = 4320.0, half_z: float = 3.5, clip: float = 4.0,
                 ridge: float = 1e-3, max_fields: int = 8, anchor_samples: int = 120,
                 short_floor: float = 0.6, long_floor: float = 0.5) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.alpha_short = 1.0 - 0.5 ** (1.0 / short_half_life)
        self.alpha_long = 1.0 - 0.5 ** (1.0 / long_half_life)
        self.alpha_var = 1.0 - 0.5 ** (1.0 / spread_half_life)
        self.warmup = warmup
        self.half_z = half_z
        self.clip = clip
        self.ridge = ridge
        self.max_fields = max_fields
        self.anchor_samples = anchor_samples
        self.short_floor = short_floor * short_floor
        self.long_floor = long_floor * long_floor
        self.anchor_alpha = 1.0 / (1.0 + anchor_samples / 4.0)
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        return (self.max_fields,) if name == "cov" else self._spec[name][1]

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        regression_update(a["mean"], a["cov"], a["count"], a["short"], a["long"],
                          a["short_var"], a["long_var"], a["level"], a["anchor"], slots, x, out,
                          self.alpha, self.alpha_short, self.alpha_long, self.alpha_var,
                          self.warmup, self.half_z, self.clip, self.ridge, self.anchor_alpha,
                          self.short_floor, self.long_floor)

    def rebaseline(self, slots: NDArray[np.int64] | list[int]) -> None:
        """Re-learn the levels of these series over the next samples, keeping their relations.

        For a change that moves a baseline and is no fault (a firmware update's new control
        curve): the series stay silent while their means re-anchor.
        """
        s, _ = as_block(slots, np.zeros((0, len(slots))))
        self._ensure(s)
        self._arrays["anchor"][s] = self.anchor_samples
        self._arrays["level"][s] = 0.0
