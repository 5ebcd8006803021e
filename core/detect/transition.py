"""Level-transition surprise: how unusual is the move from the last level to this one.

In the spirit of CAD OSE's context novelty: values are quantised into ``bins`` levels over the
series' running range, and a decaying count of level→level transitions gives the probability of
each move. A move never or rarely seen (a new pattern, a jump to an unvisited level) scores high.

>>> import numpy as np
>>> rng = np.random.default_rng(5)
>>> det = Transition(capacity=1)
>>> square = np.tile(np.r_[np.zeros(20), np.ones(20)], 30) + rng.normal(0, 0.01, 1200)
>>> _ = det.update([0], square[:, None])
>>> s = det.update([0], np.array([[0.5]]))                   # half-way: never seen
>>> bool(s[0, 0] > 0.8)
True
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Transition", "transition_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def transition_update(
    lo: NDArray[np.float64], hi: NDArray[np.float64], prev: NDArray[np.int64],
    counts: NDArray[np.float64], slots: NDArray[np.int64], x: NDArray[np.float64],
    out: NDArray[np.float64], decay: float, prior: float,
) -> None:
    """Score then learn ``x``; ``counts[s]`` is the (bins × bins) decaying transition matrix."""
    n_ticks, n_cols = x.shape
    nb = counts.shape[1]
    norm = math.log(nb / prior)
    for j in range(n_cols):
        s = slots[j]
        low, high, p = lo[s], hi[s], prev[s]  # locals for the block
        for i in range(n_ticks):
            v = x[i, j]
            if not math.isfinite(v):
                out[i, j] = 0.0
                continue
            if p < 0:
                low = v
                high = v
            rng = high - low
            b = nb // 2
            if rng > 0.0:
                b = min(max(int((v - low) / rng * (nb - 2)) + 1, 0), nb - 1)
            nov = 0.0
            if p >= 0:
                row = 0.0
                for k in range(nb):
                    row += counts[s, p, k]
                pr = (counts[s, p, b] + prior) / (row + prior * nb)
                nov = min(-math.log(pr) / norm, 1.0)
                for k in range(nb):
                    counts[s, p, k] *= decay
                counts[s, p, b] += 1.0
            out[i, j] = nov
            p = b
            low = min(low, v)
            high = max(high, v)
        lo[s], hi[s], prev[s] = low, high, p


class Transition(SoADetector):
    """Markov level-transition novelty over many series; ``bins`` levels per series."""

    name: ClassVar[str] = "transition"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "lo": (np.float64, (), 0.0),
        "hi": (np.float64, (), 0.0),
        "prev": (np.int64, (), -1),
        "counts": (np.float64, (0, 0), 0.0),
    }

    def __init__(self, capacity: int = 1024, bins: int = 12, half_life: float = 500.0,
                 prior: float = 0.1) -> None:
        self.bins = bins
        self.decay = 0.5 ** (1.0 / half_life)
        self.prior = prior
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        return (self.bins, self.bins) if name == "counts" else ()

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        transition_update(a["lo"], a["hi"], a["prev"], a["counts"], slots, x, out,
                          self.decay, self.prior)
