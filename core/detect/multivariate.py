"""Multivariate residual: a field that no longer moves with the other fields of its device.

Each field is standardised by its own slowly learned level and spread; an EWMA regression
predicts each field's standardised value from the mean of the device's other fields (each
signed by how it moves with the rest, so anti-correlated sensors help too), and the
residual, in units of its own learned spread, is the score. A fault that breaks the relation
between sensors (one thermistor drifting while its neighbours follow the load) scores on the
field to blame, even when every field alone looks normal. The columns of one ``update`` call
are one device's fields; a device with one field never scores.

>>> import numpy as np
>>> rng = np.random.default_rng(9)
>>> load = rng.normal(0, 1, 2000)
>>> x = np.c_[load, 2 * load, -load] + rng.normal(0, 0.05, (2000, 3))
>>> det = Multivariate(capacity=3)
>>> _ = det.update([0, 1, 2], x)
>>> s = det.update([0, 1, 2], np.array([[1.0, -2.0, -1.0]]))   # field 1 went the wrong way
>>> int(s[0].argmax()), bool(s[0, 1] > 0.9)
(1, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["Multivariate", "multivariate_update"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def multivariate_update(
    mean: NDArray[np.float64], var: NDArray[np.float64], cov: NDArray[np.float64],
    pvar: NDArray[np.float64], rvar: NDArray[np.float64], count: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64],
    alpha: float, warmup: int, half_z: float,
) -> None:
    """Score then learn one device's fields ``x`` (ticks × fields); scores into ``out``."""
    n_ticks, k = x.shape
    h2 = half_z * half_z
    z = np.zeros(k)
    ok = np.zeros(k, dtype=np.bool_)
    for i in range(n_ticks):
        total = 0.0
        n_ok = 0
        for j in range(k):
            s = slots[j]
            v = x[i, j]
            ok[j] = math.isfinite(v)
            z[j] = 0.0
            if ok[j] and count[s] > 1:
                z[j] = min(max((v - mean[s]) / math.sqrt(max(var[s], 1e-12)), -10.0), 10.0)
            if ok[j]:
                # fields that move against the device's common factor count with a minus sign
                total += z[j] if cov[s] >= 0.0 else -z[j]
                n_ok += 1
        for j in range(k):
            s = slots[j]
            out[i, j] = 0.0
            if not ok[j]:
                continue
            c = count[s]
            if n_ok >= 2:
                own = z[j] if cov[s] >= 0.0 else -z[j]
                others = (total - own) / (n_ok - 1)
                beta = cov[s] / pvar[s] if pvar[s] > 1e-12 else 0.0
                resid = z[j] - beta * others
                if c >= warmup:
                    r = abs(resid) / math.sqrt(max(rvar[s], 1e-4))
                    out[i, j] = r * r / (r * r + h2)
                a = max(alpha, 1.0 / (c + 1.0))
                cov[s] += a * (z[j] * others - cov[s])
                pvar[s] += a * (others * others - pvar[s])
                rvar[s] += a * (min(resid * resid, 25.0 * max(rvar[s], 1e-4)) - rvar[s])
            a = max(alpha, 1.0 / (c + 1.0))
            d = x[i, j] - mean[s]
            mean[s] += a * d
            var[s] += a * (d * d - var[s]) if c > 0 else 0.0
            count[s] = c + 1


class Multivariate(SoADetector):
    """Cross-field residual detector; each ``update`` call holds one device's fields."""

    name: ClassVar[str] = "multivariate"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "mean": (np.float64, (), 0.0),
        "var": (np.float64, (), 0.0),
        "cov": (np.float64, (), 0.0),
        "pvar": (np.float64, (), 0.0),
        "rvar": (np.float64, (), 0.0),
        "count": (np.int64, (), 0),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 1000.0, warmup: int = 120,
                 half_z: float = 3.0) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.half_z = half_z
        super().__init__(capacity)

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        multivariate_update(a["mean"], a["var"], a["cov"], a["pvar"], a["rvar"], a["count"],
                            slots, x, out, self.alpha, self.warmup, self.half_z)
