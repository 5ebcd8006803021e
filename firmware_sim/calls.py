"""When a customer calls about a fault they can see: visible time plus a skewed delay.

>>> import numpy as np
>>> model = CallModel(median_delay_s=3 * 3600, sigma=1.0, never_call_fraction=0.0)
>>> call = model.call_time(1000.0, np.random.default_rng(1))
>>> call is not None and call > 1000.0
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CallModel"]


@dataclass(frozen=True, slots=True)
class CallModel:
    """Log-normal delay between a fault becoming visible and the customer's call."""

    median_delay_s: float = 4 * 3600.0
    sigma: float = 0.8
    never_call_fraction: float = 0.1

    def call_time(self, visible: float | None, rng: np.random.Generator,
                  urgency: float = 1.0) -> float | None:
        """Time of the call, or None when the fault is never visible or the customer never calls.

        ``urgency`` scales the delay (below 1: the customer calls sooner, e.g. a cold house).
        """
        # draw both numbers always, so the stream of random numbers does not depend on the branch
        never = rng.random() < self.never_call_fraction
        delay = float(urgency * self.median_delay_s * np.exp(self.sigma * rng.standard_normal()))
        if visible is None or never:
            return None
        return visible + delay
