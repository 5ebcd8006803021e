"""Clogged filter (heat pump water strainer, pump inlet filter; slow): flow falls.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = CloggedFilter().plan(PRODUCTS["water_pump"], 0.0, 1000.0, 1e6,
...                             np.random.default_rng(1))
>>> plan.exponent
1.5
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan, slow_plan
from firmware_sim.products.base import Product

__all__ = ["CloggedFilter"]


class CloggedFilter(FaultKind):
    """Debris builds up; flow and pressure drop faster as the mesh closes."""

    name = "clogged_filter"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A slightly longer, accelerating ramp."""
        return slow_plan(self.name, onset, typical_ramp_s, rng, scale=1.2, exponent=1.5)
