"""Each series' sample interval, from its first time step: half-lives that mean a time.

The level, seasonal and transition detectors learn over a number of samples (500). Those
counts were chosen on series sampled every 5 minutes; a series sampled every 15 minutes or
hourly then learns over three or twelve times as long, and a level that moved takes as much
longer to become normal (NAB's resampled files, docs/detection.md "fifth round"). The ensemble
therefore scales those half-lives by ``reference / step`` (never above the configured count),
with ``step`` the series' first time step, learned here.

Why the first step, not a running estimate: the step must be known before any learning it
changes has happened, or the scores would depend on how the stream is cut into blocks. The
first two samples of a series teach none of the scaled quantities (the robust z and the
seasonal residual learn at ``1/(n+1)`` for hundreds of samples, and the transition counts
first decay at a series' third sample), so a step read off the first two rows changes nothing
that came before it. A step that is not positive or not finite, or a series without times,
keeps the configured counts for good.

>>> import numpy as np
>>> cad = Cadence(capacity=2)
>>> cad.learn(np.array([0, 1]), np.array([0.0]))            # one row: the step is not known
>>> cad.learn(np.array([0, 1]), np.array([900.0, 1800.0]))  # the second row gives it
>>> cad.steps(np.array([0, 1])).tolist()
[900.0, 900.0]
>>> cad.factors(np.array([0, 1]), 300.0, 0.02).tolist()    # 15-minute rows: a third
[0.3333333333333333, 0.3333333333333333]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Cadence", "cadence_factors", "cadence_reference", "cadence_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cadence_update(
    first_t: NDArray[np.float64], rows: NDArray[np.int64], step: NDArray[np.float64],
    slots: NDArray[np.int64], t: NDArray[np.float64],
) -> None:
    """Learn each slot's first time step from its first two rows of ``t`` (then stop)."""
    n = t.shape[0]
    for j in range(slots.shape[0]):
        s = slots[j]
        for i in range(n):
            if rows[s] >= 2:
                break
            ti = t[i]
            if rows[s] == 0:
                if math.isfinite(ti):
                    first_t[s] = ti
                    rows[s] = 1
                else:  # no first time: the step stays unknown
                    rows[s] = 2
            else:
                d = ti - first_t[s]
                step[s] = d if (math.isfinite(d) and d > 0.0) else 0.0
                rows[s] = 2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cadence_factors(step: NDArray[np.float64], slots: NDArray[np.int64], reference_s: float,
                    least: float, out: NDArray[np.float64]) -> bool:
    """``out[j] = clip(reference_s / step, least, 1)`` (1 where no step is known); True when
    every factor is 1 (nothing to scale)."""
    ones = True
    for j in range(slots.shape[0]):
        st = step[slots[j]]
        f = 1.0
        if reference_s > 0.0 and st > 0.0:
            f = min(max(reference_s / st, least), 1.0)
        out[j] = f
        ones = ones and f == 1.0
    return ones


def cadence_reference(
    first_t: NDArray[np.float64], rows: NDArray[np.int64], step: NDArray[np.float64],
    slots: NDArray[np.int64], t: NDArray[np.float64],
) -> None:
    """:func:`cadence_update` in plain numpy: the first two rows' times, per slot."""
    for s in slots.tolist():
        need = 2 - int(rows[s])
        if need <= 0 or t.shape[0] == 0:
            continue
        if rows[s] == 0:
            if not np.isfinite(t[0]):
                rows[s] = 2
                continue
            first_t[s], rows[s] = t[0], 1
            if t.shape[0] < 2:
                continue
            d = float(t[1] - t[0])
        else:
            d = float(t[0] - first_t[s])
        step[s] = d if np.isfinite(d) and d > 0.0 else 0.0
        rows[s] = 2


class Cadence(SoADetector):
    """The first time step of many series (state only; the ensemble scales half-lives by it).

    ``update`` learns and scores 0 everywhere (it is no detector of anomalies); the ensemble
    calls :meth:`learn` before the detectors whose half-lives it scales.
    """

    name: ClassVar[str] = "cadence"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "first_t": (np.float64, (), 0.0),
        "rows": (np.int64, (), 0),
        "step": (np.float64, (), 0.0),
    }

    def learn(self, slots: NDArray[np.int64], t: NDArray[np.float64] | None) -> None:
        """Learn from one block's times (``None``: the series has no times, the step stays
        unknown)."""
        self._ensure(slots)
        a = self._arrays
        if t is None:
            a["rows"][slots] = 2
            return
        cadence_update(a["first_t"], a["rows"], a["step"], slots,
                       np.ascontiguousarray(t, dtype=np.float64))

    def steps(self, slots: NDArray[np.int64]) -> NDArray[np.float64]:
        """Each slot's first time step in seconds (0 = not known)."""
        self._ensure(slots)
        return self._arrays["step"][slots].copy()

    def factors(self, slots: NDArray[np.int64], reference_s: float,
                least: float) -> NDArray[np.float64]:
        """``min(1, reference_s / step)`` per slot, at least ``least``; 1 where no step is known
        or ``reference_s`` is 0."""
        self._ensure(slots)
        out = np.empty(slots.shape[0], dtype=np.float64)
        cadence_factors(self._arrays["step"], slots, reference_s, least, out)
        return out

    def learn_factors(self, slots: NDArray[np.int64], t: NDArray[np.float64] | None,
                      reference_s: float, least: float) -> NDArray[np.float64] | None:
        """:meth:`learn` this block's times, then :meth:`factors`; None when all are 1 (the
        common case: a series sampled at least as often as ``reference_s``)."""
        self.learn(slots, t)
        out = np.empty(slots.shape[0], dtype=np.float64)
        return None if cadence_factors(self._arrays["step"], slots, reference_s, least,
                                       out) else out

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        self.learn(slots, t)
        out[...] = 0.0
