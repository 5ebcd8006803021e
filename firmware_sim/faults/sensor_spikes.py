"""Spiking sensor (every product, sudden, never visible): one field jumps or drops out now and
then, more often as the sensor degrades.

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> hp = PRODUCTS["heat_pump"]
>>> kind = SensorSpikes()
>>> plan = kind.plan(hp, 0.0, 1000.0, 1e6, np.random.default_rng(1))
>>> t = np.arange(200.0)
>>> values = np.full((200, 5), 10.0)
>>> u = np.random.default_rng(2).random((200, 2))
>>> kind.apply(plan, hp, t, values, plan.severity(t), u, {})
>>> col = hp.fields.index(plan.field)
>>> bool((values[:, col] != 10.0).any())
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.faults.base import FaultKind, FaultPlan
from firmware_sim.products.base import Product

__all__ = ["SensorSpikes"]


class SensorSpikes(FaultKind):
    """A failing connector or ADC: isolated wild readings; the device itself works."""

    name = "sensor_spikes"
    course = "sudden"

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """Pick a sensor and a spike rate (1–5 % of samples)."""
        sensor = product.sensor_fields[int(rng.integers(len(product.sensor_fields)))]
        return FaultPlan(kind=self.name, onset=onset, field=sensor,
                         params={"rate": float(rng.uniform(0.01, 0.05))})

    def apply(self, plan: FaultPlan, product: Product, t: NDArray[np.float64],
              values: NDArray[np.float64], severity: NDArray[np.float64],
              u: NDArray[np.float64], state: dict[str, float]) -> None:
        """Replace a random few readings by a jump (×1.5–3) or a drop to zero."""
        col = product.fields.index(plan.field or product.sensor_fields[0])
        hit = (severity > 0) & (u[:, 0] < plan.params.get("rate", 0.02))
        if not hit.any():
            return
        level = values[hit, col]
        # reuse the draw that picked the sample: u < rate there, so u / rate is uniform in
        # [0, 1) (u[:, 1] / rate, used before, reached 100: spikes of 150 times the reading)
        jump = u[hit, 0] / plan.params.get("rate", 0.02)
        values[hit, col] = np.where(jump < 0.3, 0.0, level * (1.5 + 1.5 * jump) + 5.0 * jump)
