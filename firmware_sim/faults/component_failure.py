"""Component failure (every product, sudden): the compressor, motor or contactor stops.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = ComponentFailure().plan(PRODUCTS["heat_pump"], 100.0, 1000.0, 1e6,
...                                np.random.default_rng(1))
>>> plan.ramp_s, 100.0 < plan.visible_time() <= 100.0 + 2 * 3600
(0.0, True)
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan
from firmware_sim.products.base import Product

__all__ = ["ComponentFailure"]


class ComponentFailure(FaultKind):
    """Stops at once; the customer notices within minutes to two hours, and calls soon."""

    name = "component_failure"
    course = "sudden"
    call_urgency = 0.6

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """A step at ``onset``, seen 10–120 minutes later."""
        return FaultPlan(kind=self.name, onset=onset,
                         visible_after_s=float(rng.uniform(600.0, 7200.0)))
