"""Capacity fade (home battery, slow, never visible): usable capacity shrinks, resistance grows.

The customer does not notice within weeks, so it should open a low-priority case and no
customer notice.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = CapacityFade().plan(PRODUCTS["home_battery"], 0.0, 1000.0, 1e6,
...                            np.random.default_rng(1))
>>> plan.visible_time() is None
True
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan, slow_plan
from firmware_sim.products.base import Product

__all__ = ["CapacityFade"]


class CapacityFade(FaultKind):
    """Ageing faster than it should: the state of charge swings wider for the same energy."""

    name = "capacity_fade"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A long ramp that the customer never sees."""
        return slow_plan(self.name, onset, typical_ramp_s, rng, scale=2.0, visible=None)
