"""Refrigerant leak (heat pump, slow): superheat climbs, suction pressure and current fall.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = RefrigerantLeak().plan(PRODUCTS["heat_pump"], 0.0, 1000.0, 1e6,
...                               np.random.default_rng(1))
>>> plan.visible_time() is not None
True
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan, slow_plan
from firmware_sim.products.base import Product

__all__ = ["RefrigerantLeak"]


class RefrigerantLeak(FaultKind):
    """Loses charge over days; the house stops getting warm once most of it is gone."""

    name = "refrigerant_leak"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A ramp of about the typical length, visible at 60–80 % of the way."""
        return slow_plan(self.name, onset, typical_ramp_s, rng, scale=1.0)
