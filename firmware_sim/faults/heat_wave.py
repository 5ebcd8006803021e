"""A heat wave (a region's fleet fault, issue 20): the ambient temperature of every device of
one region rises over half a day and stays up for days. Not a fault of any device: the
products' physics read it as warmer air (``Product.simulate`` takes its severity as the share
of the wave's full heat), and the customer never notices anything wrong.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> plan = HeatWave().plan(PRODUCTS["water_pump"], 0.0, 1000.0, 1e6, np.random.default_rng(1))
>>> plan.severity(np.array([0.0, 6 * 3600.0, 86_400.0])).tolist(), plan.visible_time()
([0.0, 0.5, 1.0], None)
"""

from __future__ import annotations

import numpy as np

from firmware_sim.faults.base import FaultKind, FaultPlan
from firmware_sim.products.base import Product

__all__ = ["HEAT_WAVE_RISE_S", "HeatWave"]

#: the air warms to the wave's full heat over this long
HEAT_WAVE_RISE_S = 12 * 3600.0


class HeatWave(FaultKind):
    """Warmer air for the rest of the run, reached within half a day; nobody calls."""

    name = "heat_wave"
    course = "slow"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """The same rise for every device of the region: nothing to draw."""
        return FaultPlan(kind=self.name, onset=onset, ramp_s=HEAT_WAVE_RISE_S)
