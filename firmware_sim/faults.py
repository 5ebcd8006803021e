"""Fault library: how a fault's severity evolves, and when the customer can see it.

>>> import numpy as np
>>> leak = FaultPlan(kind="refrigerant_leak", onset=100.0, ramp_s=1000.0, visible_at=0.7)
>>> leak.severity(np.array([0.0, 100.0, 600.0, 5000.0])).tolist()
[0.0, 0.0, 0.5, 1.0]
>>> leak.visible_time()
800.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FaultPlan"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A slow fault whose severity rises linearly from ``onset`` to 1 over ``ramp_s`` seconds.

    The customer can see it once severity reaches ``visible_at`` (None: never visible).
    """

    kind: str
    onset: float
    ramp_s: float
    visible_at: float | None = 0.7

    def severity(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Severity in [0, 1] at each timestamp."""
        return np.clip((t - self.onset) / self.ramp_s, 0.0, 1.0)

    def visible_time(self) -> float | None:
        """When the customer can first notice the fault."""
        if self.visible_at is None:
            return None
        return self.onset + self.visible_at * self.ramp_s
