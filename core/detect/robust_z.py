"""Robust EWMA z-score: how far a value is from its series' slowly learned level and spread.

The kernel :func:`robust_z_update` scores and learns a whole block of samples of many series in
one call. Deviations are clipped at ``clip`` spreads before they update the baseline, so an
anomaly does not teach the baseline that it is normal (a Huber-style robust update). Columns are
processed in tiles of 1024 with the tile's state held in local arrays, so the inner loop runs over
adjacent series of one tick without branches and the compiler vectorises it (x is read and the
scores written row by row, in memory order).

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

from typing import ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["RobustZ", "robust_z_reference", "robust_z_update", "z_to_score"]

# A mean absolute deviation times this is the standard deviation of a normal distribution.
_MAD_TO_SIGMA = 1.2533141373155001
_TILE = 1024


@numba.njit(cache=True, nogil=True)
def z_to_score(z: float, half_z: float) -> float:
    """Map |z| to [0, 1): ``half_z`` scores 0.5, twice ``half_z`` 0.8, three times 0.9."""
    zz = z * z
    return zz / (zz + half_z * half_z)


# error_model="numpy": a Python-style ZeroDivisionError check per division would put a branch in
# the inner loop and stop the compiler from vectorising it (the divisors are never 0 anyway).
@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "arcp", "nsz"})
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

    Non-finite samples score 0 and leave the state untouched. A series scores 0 until it has
    seen ``warmup`` samples. Every update is a select, not a branch, so the inner loop over the
    columns of a tile vectorises.
    """
    n_ticks, n_cols = x.shape
    h2 = half_z * half_z
    m = np.empty(_TILE)
    sp = np.empty(_TILE)
    c = np.empty(_TILE)
    for j0 in range(0, n_cols, _TILE):
        w = min(_TILE, n_cols - j0)
        for jj in range(w):
            s = slots[j0 + jj]
            m[jj] = mean[s]
            sp[jj] = spread[s]
            c[jj] = count[s]
        # counts only grow: once every series of the tile is warm and learning at the floor
        # rate, the block runs a leaner loop (no warm-start division, no warm-up selects) with
        # the very same arithmetic
        least = c[0]
        for jj in range(1, w):
            least = min(least, c[jj])
        if least >= warmup and least > 0.0 and 1.0 / (least + 1.0) <= alpha:
            for i in range(n_ticks):
                row = x[i, j0:j0 + w]
                scores = out[i, j0:j0 + w]
                for jj in range(w):
                    v = row[jj]
                    ok = (v - v) == 0.0
                    spj = sp[jj]
                    m_old = m[jj]
                    am = m_old if m_old >= 0.0 else -m_old
                    floor = 1e-6 * (1.0 + am)
                    sc = spj * _MAD_TO_SIGMA
                    sc = sc if sc > floor else floor
                    dev = (v - m_old) if ok else 0.0
                    ad = dev if dev >= 0.0 else -dev
                    ad2 = ad * ad
                    score = ad2 / (ad2 + h2 * sc * sc)
                    scores[jj] = score if ok else 0.0
                    lim = clip * sc
                    d = dev if dev < lim else lim
                    d = d if d > -lim else -lim
                    adl = ad if ad < lim else lim
                    m[jj] = m_old + alpha * d if ok else m_old
                    sp[jj] = spj + alpha * (adl - spj) if ok else spj
                    c[jj] = c[jj] + 1.0 if ok else c[jj]
            for jj in range(w):
                s = slots[j0 + jj]
                mean[s] = m[jj]
                spread[s] = sp[jj]
                count[s] = np.int64(c[jj])
            continue
        for i in range(n_ticks):
            row = x[i, j0:j0 + w]
            scores = out[i, j0:j0 + w]
            for jj in range(w):
                v = row[jj]
                ok = (v - v) == 0.0  # False for NaN and ±Inf
                cj = c[jj]
                spj = sp[jj]
                m_old = m[jj]
                first = cj == 0.0
                mj = v if first else m_old
                mj = mj if ok else 0.0
                am = mj if mj >= 0.0 else -mj
                floor = 1e-6 * (1.0 + am)
                sc = spj * _MAD_TO_SIGMA
                sc = sc if sc > floor else floor
                dev = (v - mj) if ok else 0.0
                ad = dev if dev >= 0.0 else -dev
                ad2 = ad * ad
                warm = cj >= warmup
                # (z^2 / (z^2 + h^2)) with z = ad / sc, in one division
                score = ad2 / (ad2 + h2 * sc * sc)
                scores[jj] = score if (warm and ok) else 0.0
                a = 1.0 / (cj + 1.0)
                a = a if a > alpha else alpha
                lim = clip * sc if warm else ad
                d = dev if dev < lim else lim
                d = d if d > -lim else -lim
                adl = ad if ad < lim else lim
                new_sp = spj + a * (adl - spj)
                new_sp = 0.0 if first else new_sp
                m[jj] = mj + a * d if ok else m_old
                sp[jj] = new_sp if ok else spj
                c[jj] = cj + 1.0 if ok else cj
        for jj in range(w):
            s = slots[j0 + jj]
            mean[s] = m[jj]
            spread[s] = sp[jj]
            count[s] = np.int64(c[jj])


def robust_z_reference(
    mean: NDArray[np.float64], spread: NDArray[np.float64], count: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64],
    alpha: float, warmup: int, clip: float, half_z: float,
) -> None:
    """Plain-numpy twin of :func:`robust_z_update`, vectorised over series (for tests, benches)."""
    m, sp, c = mean[slots].copy(), spread[slots].copy(), count[slots].astype(np.float64)
    h2 = half_z * half_z
    with np.errstate(invalid="ignore"):
        for i in range(x.shape[0]):
            v = x[i]
            ok = np.isfinite(v)
            first = c == 0
            mj = np.where(ok, np.where(first, v, m), 0.0)
            sc = np.maximum(sp * _MAD_TO_SIGMA, 1e-6 * (1.0 + np.abs(mj)))
            dev = np.where(ok, v - mj, 0.0)
            ad2 = dev * dev
            warm = c >= warmup
            out[i] = np.where(warm & ok, ad2 / (ad2 + h2 * sc * sc), 0.0)
            a = np.maximum(1.0 / (c + 1.0), alpha)
            lim = np.where(warm, clip * sc, np.abs(dev))
            d = np.clip(dev, -lim, lim)
            new_sp = np.where(first, 0.0, sp + a * (np.minimum(np.abs(dev), lim) - sp))
            m = np.where(ok, mj + a * d, m)
            sp = np.where(ok, new_sp, sp)
            c = np.where(ok, c + 1.0, c)
    mean[slots], spread[slots], count[slots] = m, sp, c.astype(np.int64)


class RobustZ(SoADetector):
    """Robust EWMA z-score detector over many series at once.

    ``half_life`` is in samples; ``warmup`` samples are learned before a series may score.
    """

    name: ClassVar[str] = "robust_z"
    _spec: ClassVar[dict[str, tuple[type, tuple[int, ...], float]]] = {
        "mean": (np.float64, (), 0.0),
        "spread": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(
        self,
        capacity: int = 1024,
        half_life: float = 1440.0,
        warmup: int = 120,
        clip: float = 3.0,
        half_z: float = 2.0,
    ) -> None:
        super().__init__(capacity)
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.half_life = half_life
        self.warmup = warmup
        self.clip = clip
        self.half_z = half_z

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        robust_z_update(a["mean"], a["spread"], a["count"], slots, x, out,
                        self.alpha, self.warmup, self.clip, self.half_z)
