"""Onset-only firing: one anomaly gives one high score, then the series stays quiet a while.

A score fires when it reaches ``fire`` and the series has not fired in the last ``quiet``
samples; every other score becomes 0. The fired score is divided by ``1 + bar``, a per-series
alarm level that each firing raises by ``boost`` and that decays with ``bar_half_life`` (a
series that keeps firing must be more unusual to fire again), and discounted by how recently
the series last fired (``1 − exp(−since/calm_scale)``), so a firing that only echoes an ongoing
disturbance ranks below one out of a long calm. ``boost = 0`` and ``calm_scale = 0`` turn
either off. With ``rearm`` > 0 a series fires again only after its score stayed below ``fire``
for that many samples (strictly one firing per disturbance, however long it lasts).

With ``rank_memory`` > 0 the fired score is a rank, unless the score itself is higher: how the
firing's strength (the score that fired) compares with the strengths of the series' last
``rank_memory`` firings, ``ceiling · (weaker + prior) / (n + 2·prior)`` (a tie is not
weaker). A series' first firing scores ``ceiling``/2, one stronger than every earlier firing
tends to ``ceiling``, and a series
that keeps firing at the same strength scores ever lower (down to that strength), so one
corpus-wide (or a rule's) bar drops the repeats of a series that fires often, whatever the
scale of its raw scores; a score above its rank (a record-breaking value's 0.5–1, above a
ceiling of 0.5) is kept as it is.

>>> import numpy as np
>>> det = Onset(capacity=1, fire=0.5, quiet=3, calm_scale=0.0)
>>> det.update([0], np.array([[0.1], [0.7], [0.8], [0.9], [0.2], [0.95]])).ravel().tolist()
[0.0, 0.7, 0.0, 0.0, 0.0, 0.95]
>>> echo = Onset(capacity=1, fire=0.5, quiet=3, calm_scale=10.0)
>>> s = echo.update([0], np.array([[0.9], [0.9], [0.9], [0.9], [0.9]])).ravel()
>>> float(s[0]), round(float(s[4]), 3)                       # the echo, 4 samples on, ranks low
(0.9, 0.233)
>>> ranked = Onset(capacity=1, fire=0.2, quiet=0, rank_memory=4, rank_prior=1.0)
>>> x = np.array([[0.3], [0.1], [0.25], [0.1], [0.4], [0.1], [0.3]])
>>> [round(float(v), 3) for v in ranked.update([0], x).ravel() if v > 0]  # then weaker, ...
[0.5, 0.333, 0.75, 0.4]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Onset", "TimedOnset", "onset_timed_update", "onset_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _ranked(v: float, s: int, past: NDArray[np.float64], n_past: NDArray[np.int64],
            prior: float, ceiling: float) -> float:
    """The fired score of strength ``v`` for series ``s``: ``min(v, 1)``, or its rank among the
    series' last firings if higher (see the module's docstring); the firing joins ``past``."""
    fired = min(v, 1.0)
    memory = past.shape[1]
    if memory > 0:
        np_ = n_past[s]
        held = min(np_, memory)
        below = 0.0
        for k in range(held):
            if past[s, k] < v:
                below += 1.0
        fired = max(fired, ceiling * (below + prior) / (held + 2.0 * prior))
        past[s, np_ % memory] = v
        n_past[s] = np_ + 1
    return fired


@numba.njit(cache=True, nogil=True, error_model="numpy")
def onset_update(
    since: NDArray[np.int64], calm: NDArray[np.int64], slots: NDArray[np.int64],
    bar: NDArray[np.float64], score: NDArray[np.float64], out: NDArray[np.float64],
    fire: float, quiet: int, calm_scale: float, boost: float, bar_decay: float,
    rearm: int, past: NDArray[np.float64], n_past: NDArray[np.int64], prior: float,
    ceiling: float,
) -> None:
    """Keep only onsets of ``score`` (ticks × columns) in ``out``; state counts samples.

    ``past`` (series × memory) holds the strengths of each series' last firings and ``n_past``
    how many it fired; with a memory of 0 the fired score is the score itself.
    """
    n_ticks, n_cols = score.shape
    for j in range(n_cols):
        s = slots[j]
        sn, cl, br = since[s], calm[s], bar[s]  # locals: kept in registers over the block
        for i in range(n_ticks):
            v = score[i, j] / (1.0 + br)
            br *= bar_decay
            sn += 1
            cl += 1
            out[i, j] = 0.0
            if not (math.isfinite(v) and v >= fire):
                continue
            if sn > quiet and cl > rearm:
                weight = 1.0
                if calm_scale > 0.0:
                    weight = 1.0 - math.exp(-(sn - 1) / calm_scale)
                out[i, j] = _ranked(v, s, past, n_past, prior, ceiling) * weight
                sn = 0
                br += boost
            cl = 0
        since[s], calm[s], bar[s] = sn, cl, br


@numba.njit(cache=True, nogil=True, error_model="numpy")
def onset_timed_update(
    since: NDArray[np.int64], slots: NDArray[np.int64], score: NDArray[np.float64],
    out: NDArray[np.float64], t: NDArray[np.float64], interval: NDArray[np.float64],
    last_t: NDArray[np.float64], fire: float, quiet: int, quiet_s: float, quiet_min: int,
    past: NDArray[np.float64], n_past: NDArray[np.int64], prior: float, ceiling: float,
) -> None:
    """:func:`onset_update` with the quiet period in seconds, as rows of the series' interval.

    The quiet period after a firing is ``quiet_s`` over the series' learned sample interval
    (an EWMA of the time steps, each capped at 10 intervals), kept between ``quiet_min`` and
    ``quiet`` samples; ``quiet`` until an interval is known. No bar, echo discount or re-arm.
    """
    n_ticks, n_cols = score.shape
    for j in range(n_cols):
        s = slots[j]
        sn, dt_s, t_s = since[s], interval[s], last_t[s]
        for i in range(n_ticks):
            ti = t[i]
            if math.isfinite(ti):
                if t_s != 0.0:
                    dt = ti - t_s
                    if dt > 0.0:
                        dt_s = dt if dt_s <= 0.0 else dt_s + 0.01 * (min(dt, 10.0 * dt_s) - dt_s)
                t_s = ti if ti != 0.0 else 1e-9
            v = score[i, j]
            sn += 1
            out[i, j] = 0.0
            if not (math.isfinite(v) and v >= fire):
                continue
            rows = quiet
            if dt_s > 0.0:
                rows = min(quiet, max(quiet_min, round(quiet_s / dt_s)))
            if sn > rows:
                out[i, j] = _ranked(v, s, past, n_past, prior, ceiling)
                sn = 0
        since[s], interval[s], last_t[s] = sn, dt_s, t_s


class Onset(SoADetector):
    """Onset filter with a quiet period and an echo discount, for many series."""

    name: ClassVar[str] = "onset"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "since": (np.int64, (), 1 << 40),
        "calm": (np.int64, (), 1 << 40),
        "bar": (np.float64, (), 0.0),
        "past": (np.float64, (0,), 0.0),
        "n_past": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, fire: float = 0.12, quiet: int = 200,
                 calm_scale: float = 0.0, boost: float = 0.0,
                 bar_half_life: float = 2000.0, rearm: int = 0, rank_memory: int = 0,
                 rank_prior: float = 2.0, rank_ceiling: float = 1.0) -> None:
        self.rank_memory = rank_memory
        self.rank_ceiling = rank_ceiling
        self.rank_prior = rank_prior
        self.rearm = rearm
        self.fire = fire
        self.boost = boost
        self.bar_decay = 0.5 ** (1.0 / bar_half_life)
        self.quiet = quiet
        self.calm_scale = calm_scale
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        return (self.rank_memory,) if name == "past" else ()

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        onset_update(a["since"], a["calm"], slots, a["bar"], x, out, self.fire, self.quiet,
                     self.calm_scale, self.boost, self.bar_decay, self.rearm, a["past"],
                     a["n_past"], self.rank_prior, self.rank_ceiling)


class TimedOnset(Onset):
    """Onset filter whose quiet period is a time (``quiet_s``), in rows of each series' interval.

    Between ``quiet_min`` and ``quiet`` rows; without times (``t`` None), or with ``quiet_s``
    = 0, it is :class:`Onset` with ``quiet`` rows. A firing fences off about the same span of
    time on a series sampled every 5 minutes as on one sampled every 15, so a quiet period
    that starts on a false positive does not swallow the next anomaly of a coarser series.

    >>> import numpy as np
    >>> det = TimedOnset(capacity=1, fire=0.5, quiet=100, quiet_s=600.0, quiet_min=2)
    >>> x = np.array([[0.9], [0.0], [0.9], [0.9], [0.0], [0.9]])
    >>> det.update([0], x, np.arange(6) * 300.0).ravel().tolist()   # 600 s = 2 rows of 300 s
    [0.9, 0.0, 0.0, 0.9, 0.0, 0.0]
    """

    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        **Onset._spec,
        "interval": (np.float64, (), 0.0),
        "last_t": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, fire: float = 0.12, quiet: int = 200,
                 quiet_s: float = 0.0, quiet_min: int = 0, rank_memory: int = 0,
                 rank_prior: float = 2.0, rank_ceiling: float = 1.0) -> None:
        self.quiet_s = quiet_s
        self.quiet_min = quiet_min
        super().__init__(capacity, fire, quiet, rank_memory=rank_memory,
                         rank_prior=rank_prior, rank_ceiling=rank_ceiling)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        if t is None or self.quiet_s <= 0.0:
            super()._run(slots, x, t, out)
            return
        a = self._arrays
        onset_timed_update(a["since"], slots, x, out, t, a["interval"], a["last_t"], self.fire,
                           self.quiet, self.quiet_s, self.quiet_min, a["past"], a["n_past"],
                           self.rank_prior, self.rank_ceiling)
