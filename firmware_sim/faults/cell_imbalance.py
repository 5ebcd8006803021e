"""Cell imbalance (home battery, slow): the cell voltages drift apart, worst near full and empty.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = CellImbalance().plan(PRODUCTS["home_battery"], 0.0, 1000.0, 1e6,
...                             np.random.default_rng(1))
>>> plan.visible_time() is not None
True
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan, slow_plan
from firmware_sim.products.base import Product

__all__ = ["CellImbalance"]


class CellImbalance(FaultKind):
    """A weak cell ends charging early; the customer sees the pack never reaching full."""

    name = "cell_imbalance"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A ramp of about the typical length."""
        return slow_plan(self.name, onset, typical_ramp_s, rng, scale=1.0)
