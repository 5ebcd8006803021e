"""Robust EWMA z-score: how far a value is from its series' slowly learned level and spread.

The kernel :func:`robust_z_update` is a plain numba function over struct-of-arrays state (one
slot per series) that scores and learns a whole block of samples in one call. Deviations are
clipped at ``clip`` spreads before they update the baseline, so an anomaly does not teach the
baseline that it is normal (a Huber-style robust update).

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> det = RobustZ(capacity=2, half_life=200.0, warmup=50)
>>> normal = rng.normal(10.0, 1.0, size=(300, 2))
>>> _ = det.update(np.array([0, 1]), normal)
>>> scores = det.update(np.array([0, 1]), np.array([[10.0, 25.0]]))
>>> bool(scores[0, 0] < 0.5), bool(scores[0, 1] > 0.9)
(True, True)
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["RobustZ", "RobustZState", "robust_z_update", "z_to_score"]

# A mean absolute deviation times this is the standard deviation of a normal distribution.
_MAD_TO_SIGMA = 1.2533141373155001


@numba.njit(cache=True, nogil=True)
def z_to_score(z: float, half_z: float) -> float:
    """Map |z| to [0, 1): ``half_z`` scores 0.5, twice ``half_z`` 0.8, three times 0.9."""
    zz = z * z
    return zz / (zz + half_z * half_z)


@numba.njit(cache=True, nogil=True)
def robust_z_update(
    mean: NDArray[np.float64],
    spread: NDArray[np.float64],
    count: NDArray[np.int64],
    slots: NDArray[np.int64],
    x: NDArray[np.float64],
    out: NDArray[np.float64],
    alpha: float,
    warmup: int,
    clip: float,
    half_z: float,
) -> None:
    """Score then learn ``x`` (ticks × columns) for the series in ``slots``; scores into ``out``.

    NaN samples score 0 and leave the state untouched. A series scores 0 until it has seen
    ``warmup`` samples.
    """
    n_ticks, n_cols = x.shape
    for i in range(n_ticks):
        for j in range(n_cols):
            s = slots[j]
            v = x[i, j]
            if not math.isfinite(v):
                out[i, j] = 0.0
                continue
            c = count[s]
            if c == 0:
                mean[s] = v
                spread[s] = 0.0
                count[s] = 1
                out[i, j] = 0.0
                continue
            m = mean[s]
            floor = 1e-6 * (1.0 + abs(m))
            sc = spread[s] * _MAD_TO_SIGMA
            if sc < floor:
                sc = floor
            dev = v - m
            z = abs(dev) / sc
            out[i, j] = z_to_score(z, half_z) if c >= warmup else 0.0
            # learn fast at first, then at the configured rate
            a = 1.0 / (c + 1.0)
            if a < alpha:
                a = alpha
            lim = clip * sc if c >= warmup else abs(dev)
            d = min(max(dev, -lim), lim)
            mean[s] = m + a * d
            spread[s] = spread[s] + a * (min(abs(dev), lim) - spread[s])
            count[s] = c + 1


class RobustZState:
    """Struct-of-arrays state of :class:`RobustZ`: one slot per series."""

    __slots__ = ("count", "mean", "spread")

    def __init__(self, capacity: int) -> None:
        self.mean = np.zeros(capacity, dtype=np.float64)
        self.spread = np.zeros(capacity, dtype=np.float64)
        self.count = np.zeros(capacity, dtype=np.int64)

    def grow(self, capacity: int) -> None:
        """Make room for at least ``capacity`` series, keeping what was learned."""
        old = self.mean.shape[0]
        if capacity <= old:
            return
        new = max(capacity, 2 * old)
        for name in self.__slots__:
            arr = getattr(self, name)
            grown = np.zeros(new, dtype=arr.dtype)
            grown[:old] = arr
            setattr(self, name, grown)


class RobustZ:
    """Robust EWMA z-score detector over many series at once.

    ``half_life`` is in samples; ``warmup`` samples are learned before a series may score.
    """

    name = "robust_z"

    def __init__(
        self,
        capacity: int = 1024,
        half_life: float = 1440.0,
        warmup: int = 120,
        clip: float = 3.0,
        half_z: float = 2.0,
    ) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.half_life = half_life
        self.warmup = warmup
        self.clip = clip
        self.half_z = half_z
        self._state = RobustZState(capacity)

    def update(self, slots: NDArray[np.int64], x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Score then learn a block ``x`` (ticks × len(slots)); return scores of the same shape."""
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        x = np.ascontiguousarray(x, dtype=np.float64)
        if slots.size and int(slots.max()) >= self._state.mean.shape[0]:
            self._state.grow(int(slots.max()) + 1)
        out = np.empty(x.shape, dtype=np.float64)
        robust_z_update(
            self._state.mean, self._state.spread, self._state.count, slots, x, out,
            self.alpha, self.warmup, self.clip, self.half_z,
        )
        return out

    def state(self) -> dict[str, NDArray[np.generic]]:
        """Copy of the learned state, for checkpoints."""
        return {name: getattr(self._state, name).copy() for name in RobustZState.__slots__}

    def load_state(self, state: dict[str, NDArray[np.generic]]) -> None:
        """Restore what :meth:`state` returned."""
        capacity = int(state["mean"].shape[0])
        self._state = RobustZState(capacity)
        for name in RobustZState.__slots__:
            getattr(self._state, name)[:] = state[name]
