"""Anomaly likelihood: how unusual is a series' recent score, given its own score history.

Numenta's idea: a detector's raw score is noisy and its scale differs per series, so compare the
mean of the last ``window`` raw scores with the long-run distribution of that mean (an EWMA mean
and variance) and report the Gaussian tail as a log score in [0, 1] (1 ≈ a 1e-12 tail). A
series whose raw scores are always high (a noisy one) thus scores low, and one that is normally
calm scores high as soon as it stirs. Non-finite raw scores are skipped (score 0, not learned).
With ``skip`` > 0 the first ``skip`` samples of a series only fill the window: the detectors
that feed this stage score 0 while they warm up, and a distribution learned from those zeros
would make the first real scores look unusual. The stage then learns for ``warmup`` samples
before it scores.

>>> import numpy as np
>>> rng = np.random.default_rng(2)
>>> det = AnomalyLikelihood(capacity=1, window=5, warmup=50)
>>> _ = det.update([0], rng.uniform(0.0, 0.2, (1000, 1)))
>>> s = det.update([0], np.full((5, 1), 0.9))
>>> bool(s[-1, 0] > 0.9)
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["AnomalyLikelihood", "likelihood_update"]

_LOG_TINY = math.log(1e-12)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def likelihood_update(
    ring: NDArray[np.float64], total: NDArray[np.float64], mean: NDArray[np.float64],
    var: NDArray[np.float64], count: NDArray[np.int64], slots: NDArray[np.int64],
    raw: NDArray[np.float64], out: NDArray[np.float64], alpha: float, warmup: int,
    mean_floor: float, var_floor: float, skip: int = 0,
) -> None:
    """Turn raw scores (ticks × columns) into log-likelihood scores in ``out``."""
    n_ticks, n_cols = raw.shape
    w = ring.shape[1]
    for j in range(n_cols):
        s = slots[j]
        tot, mu, v2, c = total[s], mean[s], var[s], count[s]  # locals for the block
        for i in range(n_ticks):
            r = raw[i, j]
            if not math.isfinite(r):
                out[i, j] = 0.0
                continue
            # a running sum of the ring, re-summed once per lap so rounding cannot creep
            k0 = c % w
            tot += r - ring[s, k0]
            ring[s, k0] = r
            if k0 == w - 1:
                tot = 0.0
                for k in range(w):
                    tot += ring[s, k]
            short = tot / w
            if c < skip:  # the feeding detectors still warm up: fill the window, learn nothing
                c += 1
                out[i, j] = 0.0
                continue
            sd = math.sqrt(max(v2, var_floor))
            z = (short - max(mu, mean_floor)) / sd
            a = max(alpha, 1.0 / (c - skip + 1.0))
            mu += a * (short - mu)
            v2 += a * ((short - mu) ** 2 - v2)
            score = 0.0
            if z > 0.0 and c >= skip + warmup:
                tail = 0.5 * math.erfc(z / math.sqrt(2.0))
                score = math.log(max(tail, 1e-12)) / _LOG_TINY
            c += 1
            out[i, j] = score
        total[s], mean[s], var[s], count[s] = tot, mu, v2, c


class AnomalyLikelihood(SoADetector):
    """Anomaly-likelihood stage over raw scores of many series (``update(slots, raw)``)."""

    name: ClassVar[str] = "likelihood"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "ring": (np.float64, (0,), 0.0),
        "total": (np.float64, (), 0.0),
        "mean": (np.float64, (), 0.0),
        "var": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, window: int = 30, half_life: float = 4000.0,
                 warmup: int = 300, mean_floor: float = 0.0, var_floor: float = 1e-6,
                 skip: int = 0) -> None:
        self.skip = skip
        self.mean_floor = mean_floor
        self.var_floor = var_floor
        self.window = window
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        return (self.window,) if name == "ring" else ()

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        likelihood_update(a["ring"], a["total"], a["mean"], a["var"], a["count"], slots, x, out,
                          self.alpha, self.warmup, self.mean_floor, self.var_floor, self.skip)
