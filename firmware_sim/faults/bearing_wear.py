"""Bearing wear (water pump, slow): vibration and motor temperature rise, accelerating.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = BearingWear().plan(PRODUCTS["water_pump"], 0.0, 1000.0, 1e6, np.random.default_rng(1))
>>> plan.exponent
2.0
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan, slow_plan
from firmware_sim.products.base import Product

__all__ = ["BearingWear"]


class BearingWear(FaultKind):
    """Wear feeds on itself: severity grows with the square of time; the customer hears it."""

    name = "bearing_wear"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A long, accelerating ramp, heard at 50–70 % severity."""
        return slow_plan(self.name, onset, typical_ramp_s, rng, scale=1.5, exponent=2.0,
                         visible=(0.5, 0.7))
