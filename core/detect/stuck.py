"""Stuck / flatline: a series that usually moves keeps repeating the same value.

A series learns the longest run of identical values it has shown; a run more than ``factor``
times that long (and at least ``min_run`` samples) scores, rising from 0.5 at the limit. A
series that has never moved (a constant by design) never scores.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> det = Stuck(capacity=1)
>>> _ = det.update([0], rng.normal(0, 1, (300, 1)))
>>> s = det.update([0], np.full((40, 1), 0.25))
>>> float(s[0, 0]), bool(s[-1, 0] > 0.5)
(0.0, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Stuck", "stuck_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def stuck_update(
    last: NDArray[np.float64], run: NDArray[np.int64], longest: NDArray[np.int64],
    changes: NDArray[np.int64], slots: NDArray[np.int64], x: NDArray[np.float64],
    out: NDArray[np.float64], factor: float, min_run: int, min_changes: int,
) -> None:
    """Score then learn run lengths of ``x`` (ticks × columns); scores into ``out``."""
    n_ticks, n_cols = x.shape
    for j in range(n_cols):
        s = slots[j]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            if not math.isfinite(v):
                continue
            if run[s] > 0 and v == last[s]:
                run[s] += 1
            else:
                if run[s] > 0:
                    changes[s] += 1
                    longest[s] = max(longest[s], run[s])
                run[s] = 1
                last[s] = v
            limit = max(factor * longest[s], float(min_run))
            if changes[s] >= min_changes and run[s] > limit:
                out[i, j] = 1.0 - 0.5 * limit / run[s]


class Stuck(SoADetector):
    """Flatline detector for many series."""

    name: ClassVar[str] = "stuck"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "last": (np.float64, (), 0.0),
        "run": (np.int64, (), 0),
        "longest": (np.int64, (), 0),
        "changes": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, factor: float = 3.0, min_run: int = 10,
                 min_changes: int = 50) -> None:
        self.factor = factor
        self.min_run = min_run
        self.min_changes = min_changes
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        stuck_update(a["last"], a["run"], a["longest"], a["changes"], slots, x, out,
                     self.factor, self.min_run, self.min_changes)
