"""Stuck sensor (every product, sudden, never visible): one field flatlines at its last reading.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> hp = PRODUCTS["heat_pump"]
>>> kind = SensorStuck()
>>> plan = kind.plan(hp, 2.0, 1000.0, 1e6, np.random.default_rng(1))
>>> t = np.arange(5.0)
>>> values = np.arange(25.0).reshape(5, 5)
>>> kind.apply(plan, hp, t, values, plan.severity(t), np.zeros((5, 2)), {})
>>> col = hp.fields.index(plan.field)
>>> values[:, col].tolist() == [col, 5.0 + col, 10.0 + col, 10.0 + col, 10.0 + col]
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.faults.base import FaultKind, FaultPlan
from firmware_sim.products.base import Product

__all__ = ["SensorStuck"]


class SensorStuck(FaultKind):
    """The sensor's reading freezes; the device works on, so the customer never notices."""

    name = "sensor_stuck"
    course = "sudden"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """Pick one of the product's sensors."""
        sensor = product.sensor_fields[int(rng.integers(len(product.sensor_fields)))]
        return FaultPlan(kind=self.name, onset=onset, field=sensor)

    def apply(self, plan: FaultPlan, product: Product, t: NDArray[np.float64],
              values: NDArray[np.float64], severity: NDArray[np.float64],
              u: NDArray[np.float64], state: dict[str, float]) -> None:
        """Hold the first reading at or after onset for every later sample."""
        col = product.fields.index(plan.field or product.sensor_fields[0])
        stuck = severity > 0
        if not stuck.any():
            return
        if "stuck" not in state:
            state["stuck"] = float(values[int(np.argmax(stuck)), col])
        values[stuck, col] = state["stuck"]
