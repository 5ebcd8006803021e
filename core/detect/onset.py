"""Onset-only firing: one anomaly gives one high score, then the series stays quiet a while.

A score fires when it reaches ``fire`` and the series has not fired in the last ``quiet``
samples; the fired score passes through, every other score becomes 0. Downstream, a non-zero
score is therefore the onset of an anomaly, and a long anomaly does not open a case per sample.

>>> import numpy as np
>>> det = Onset(capacity=1, fire=0.5, quiet=3)
>>> det.update([0], np.array([[0.1], [0.7], [0.8], [0.9], [0.2], [0.95]])).ravel().tolist()
[0.0, 0.7, 0.0, 0.0, 0.0, 0.95]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Onset", "onset_update"]


@numba.njit(cache=True, nogil=True)
def onset_update(
    since: NDArray[np.int64], slots: NDArray[np.int64], score: NDArray[np.float64],
    out: NDArray[np.float64], fire: float, quiet: int,
) -> None:
    """Keep only onsets of ``score`` (ticks × columns) in ``out``; ``since`` counts samples."""
    n_ticks, n_cols = score.shape
    for j in range(n_cols):
        s = slots[j]
        for i in range(n_ticks):
            v = score[i, j]
            since[s] += 1
            if math.isfinite(v) and v >= fire and since[s] > quiet:
                out[i, j] = min(v, 1.0)
                since[s] = 0
            else:
                out[i, j] = 0.0


class Onset(SoADetector):
    """Onset filter with a quiet period, for many series."""

    name: ClassVar[str] = "onset"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "since": (np.int64, (), 1 << 40),
    }

    def __init__(self, capacity: int = 1024, fire: float = 0.12, quiet: int = 200) -> None:
        self.fire = fire
        self.quiet = quiet
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        onset_update(self._arrays["since"], slots, x, out, self.fire, self.quiet)
