"""Each field's own calibrated level: its per-field detectors' tail probability against a target.

The per-field detectors (level, time of day, changes of level, records; see the ensemble)
end in the anomaly-likelihood stage, whose score is a Gaussian tail probability ``p`` on a log
scale (``score = log p / log 1e-12``). This stage turns ``p`` into the same calibrated level
the subspace stage gives (:mod:`core.detect.subspace`): Bonferroni over the device's ``k``
fields, then ``level = 1 / (1 + (0.15/0.85) · k·p / p*)`` where ``p*`` is the per-sample
probability that ``target_per_month`` false alarms per device and month allow at the series'
learned sample interval (60 s when no times are given). The level is :data:`ALARM_LEVEL`
(0.85, the default rules' bar) exactly at ``p*``. A record-breaking value (the extreme
detector's score) counts as it is, times ``extreme_weight``. One crossing of the bar is one
alarm: the level holds its peak for ``hold`` samples (the likelihood's window), so a rule that
wants the level for ten samples does not test the same evidence ten times over.

So one field alone gets a level that rules can hold (the likelihood averages 30 samples, so
an anomaly keeps the level up while it lasts), and a device of many fields does not alarm
more often for having more of them.

>>> import numpy as np
>>> det = FieldLevel(capacity=1)
>>> t = np.arange(4) * 60.0
>>> lik = np.array([[0.0], [0.2], [0.45], [0.9]])          # p = 1, 4e-3, 4e-6, 1.6e-11
>>> np.round(det.update([0], lik, t, extreme=np.zeros((4, 1)))[:, 0], 3).tolist()
[0.0, 0.01, 0.908, 1.0]
>>> np.round(det.update([0], np.zeros((2, 1)), t + 240.0, extreme=np.zeros((2, 1)))[:, 0], 3)
array([1., 1.])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector
from core.detect.subspace import ALARM_LEVEL, MONTH_S

__all__ = ["FieldLevel", "field_level_update"]

_LOG_TINY = math.log(1e-12)


@numba.njit(cache=True, nogil=True)
def field_level_update(
    interval: NDArray[np.float64], last_t: NDArray[np.float64], slots: NDArray[np.int64],
    peak: NDArray[np.float64], age: NDArray[np.int64], run: NDArray[np.int64],
    lik: NDArray[np.float64], ext: NDArray[np.float64], held: NDArray[np.float64],
    t: NDArray[np.float64], has_t: bool, out: NDArray[np.float64], target: float, weight: float,
    extreme_weight: float, hold: int, confirm: int,
) -> None:
    """Levels of ``lik`` (likelihood scores, ticks × fields of one device) into ``out``."""
    n_ticks, k = lik.shape
    c_level = (1.0 - ALARM_LEVEL) / ALARM_LEVEL
    for j in range(k):
        s = slots[j]
        for i in range(n_ticks):
            if has_t and math.isfinite(t[i]):
                if last_t[s] != 0.0:
                    dt = t[i] - last_t[s]
                    if dt > 0.0:
                        if interval[s] <= 0.0:
                            interval[s] = dt
                        else:
                            interval[s] += 0.01 * (min(dt, 10.0 * interval[s]) - interval[s])
                last_t[s] = t[i] if t[i] != 0.0 else 1e-9
            score = lik[i, j]
            if not math.isfinite(score):
                lv = peak[s]  # a missing sample: the level stays where it was
            else:
                lv = 0.0
                if score > 0.0:
                    p_star = target * (interval[s] if interval[s] > 0.0 else 60.0) / MONTH_S
                    p = math.exp(min(score, 1.0) * _LOG_TINY) * k
                    lv = weight / (1.0 + c_level * p / p_star)
                # another stage's level joins the held one once it stayed at the bar for
                # `confirm` samples (a lone sample past the bar is the tails' noise)
                h = held[i, j]
                if math.isfinite(h) and h >= ALARM_LEVEL:
                    run[s] += 1
                    if run[s] >= confirm:
                        lv = max(lv, h)
                else:
                    run[s] = 0
                # one crossing of the calibrated bar is one alarm: the level holds its peak
                # for `hold` samples, so a rule's duration does not re-test the same evidence
                if lv >= peak[s] or age[s] >= hold:
                    peak[s] = lv
                    age[s] = 0
                else:
                    age[s] += 1
                    lv = peak[s]
            h = held[i, j]
            if math.isfinite(h):
                lv = max(lv, h)
            e = ext[i, j]
            if math.isfinite(e):
                lv = max(lv, extreme_weight * e)
            out[i, j] = lv


class FieldLevel(SoADetector):
    """Calibrated per-field level from likelihood scores (``update(slots, lik, t, extreme=)``).

    ``target_per_month``: false alarms per device and month at :data:`ALARM_LEVEL`.
    """

    name: ClassVar[str] = "field_level"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "interval": (np.float64, (), 0.0),
        "last_t": (np.float64, (), 0.0),
        "peak": (np.float64, (), 0.0),
        "age": (np.int64, (), 0),
        "run": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, target_per_month: float = 0.3,
                 extreme_weight: float = 1.0, hold: int = 30, weight: float = 1.0,
                 confirm: int = 3) -> None:
        self.confirm = confirm
        self.target = target_per_month
        self.weight = weight
        self.hold = hold
        self.extreme_weight = extreme_weight
        self._extreme: NDArray[np.float64] | None = None
        super().__init__(capacity)

    def update(
        self, slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None, out: NDArray[np.float64] | None = None,
        *, extreme: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Levels of likelihood scores ``x``, with the extreme detector's scores if given."""
        self._extreme = None if extreme is None else np.asarray(extreme, dtype=np.float64)
        try:
            return super().update(slots, x, t, out)
        finally:
            self._extreme = None

    def levels(self, slots: NDArray[np.int64], lik: NDArray[np.float64],
               extreme: NDArray[np.float64] | None, held: NDArray[np.float64] | None,
               t: NDArray[np.float64] | None, out: NDArray[np.float64]) -> None:
        """The ensemble's call: ``lik``, ``extreme`` and other calibrated levels to combine
        with them, not held (``held``: the subspace stage's), ticks × fields, into ``out``."""
        self._ensure(slots)
        ext = np.zeros(lik.shape) if extreme is None else extreme
        other = np.zeros(lik.shape) if held is None else held
        a = self._arrays
        tt = t if t is not None else np.zeros(lik.shape[0])
        field_level_update(a["interval"], a["last_t"], slots, a["peak"], a["age"], a["run"], lik,
                           ext,
                           other, tt, t is not None, out, self.target, self.weight,
                           self.extreme_weight, self.hold,
                           self.confirm)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        ext = self._extreme if self._extreme is not None else np.zeros(x.shape)
        a = self._arrays
        tt = t if t is not None else np.zeros(x.shape[0])
        field_level_update(a["interval"], a["last_t"], slots, a["peak"], a["age"], a["run"], x,
                           ext,
                           np.zeros(x.shape), tt, t is not None, out, self.target, self.weight,
                           self.extreme_weight, self.hold,
                           self.confirm)
