"""Loose connection (every product, intermittent): the power lead cuts out in episodes that come
more and more often; the customer notices after a few.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = LooseConnection().plan(PRODUCTS["water_pump"], 0.0, 1000.0, 30 * 86_400.0,
...                               np.random.default_rng(1))
>>> episodes = plan.episodes
>>> bool(np.all(np.diff(episodes[:, 0]) > 0)), bool(plan.visible_time() == episodes[4, 0])
(True, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.faults.base import FaultKind, FaultPlan
from firmware_sim.products.base import Product

__all__ = ["LooseConnection"]

#: the customer notices at the start of this episode (counting from 1)
_NOTICED_AT = 5


class LooseConnection(FaultKind):
    """Episodes of 2–15 minutes; the gap between them shrinks by a quarter each time."""

    name = "loose_connection"
    course = "intermittent"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """Draw every episode up to ``horizon_end`` (so blocks of any size agree)."""
        first_gap = float(rng.uniform(0.1, 0.25)) * typical_ramp_s
        starts: list[float] = []
        ends: list[float] = []
        start, gap = onset, first_gap
        while start < horizon_end or len(starts) < _NOTICED_AT:
            starts.append(start)
            ends.append(start + float(rng.uniform(120.0, 900.0)))
            gap = max(gap * 0.75, 1800.0)
            start = ends[-1] + gap * float(rng.uniform(0.5, 1.5))
        episodes = np.column_stack((starts, ends))
        return FaultPlan(kind=self.name, onset=onset, episodes=episodes,
                         visible_after_s=float(episodes[_NOTICED_AT - 1, 0] - onset))

    def apply(self, plan: FaultPlan, product: Product, t: NDArray[np.float64],
              values: NDArray[np.float64], severity: NDArray[np.float64],
              u: NDArray[np.float64], state: dict[str, float]) -> None:
        """During an episode the power field chatters near zero and a third of samples is lost."""
        col = product.fields.index(product.power_field)
        out = severity > 0
        if not out.any():
            return
        values[out, col] *= 0.2 * u[out, 0]
        lost = out & (u[:, 1] < 0.33)
        values[lost, :] = np.nan
