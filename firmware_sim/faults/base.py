"""What a fault is: a plan (onset, course, when the customer sees it) and a kind that draws plans.

A plan's course is one of three shapes: a slow ramp of severity from 0 to 1 (``ramp_s`` > 0),
a sudden step (``ramp_s`` = 0), or intermittent episodes (``episodes``: rows of start, end).

>>> import numpy as np
>>> leak = FaultPlan(kind="refrigerant_leak", onset=100.0, ramp_s=1000.0, visible_at=0.7)
>>> leak.severity(np.array([0.0, 100.0, 600.0, 5000.0])).tolist()
[0.0, 0.0, 0.5, 1.0]
>>> leak.visible_time()
800.0
>>> step = FaultPlan(kind="component_failure", onset=10.0, visible_after_s=5.0)
>>> step.severity(np.array([9.0, 10.0])).tolist(), step.visible_time()
([0.0, 1.0], 15.0)
>>> flaky = FaultPlan(kind="loose_connection", onset=0.0,
...                   episodes=np.array([[10.0, 20.0], [40.0, 45.0]]))
>>> flaky.severity(np.array([5.0, 10.0, 19.0, 20.0, 41.0])).tolist()
[0.0, 1.0, 1.0, 0.0, 1.0]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import Product

__all__ = ["Course", "FaultKind", "FaultPlan"]

Course = Literal["slow", "sudden", "intermittent"]


@dataclass(frozen=True, slots=True, eq=False)
class FaultPlan:
    """One injected fault: when it starts, how it develops and when the customer can see it.

    Visibility: ``visible_after_s`` seconds after onset when given, else once a slow fault's
    severity reaches ``visible_at``; with both None the customer never notices.
    """

    kind: str
    onset: float
    ramp_s: float = 0.0
    visible_at: float | None = None
    visible_after_s: float | None = None
    #: severity = (fraction of the ramp) ** exponent: above 1 a fault that accelerates
    exponent: float = 1.0
    #: the sensor a sensor-level fault affects (None: the kind picks, or all of them)
    field: str | None = None
    episodes: NDArray[np.float64] | None = None
    #: extra parameters of the kind (spike rate, stuck value…)
    params: dict[str, float] = dataclasses.field(default_factory=dict)

    def severity(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Severity in [0, 1] at each timestamp."""
        if self.episodes is not None:
            starts, ends = self.episodes[:, 0], self.episodes[:, 1]
            i = np.searchsorted(starts, t, side="right") - 1
            inside = (i >= 0) & (t < ends[np.maximum(i, 0)])
            return inside.astype(np.float64)
        if self.ramp_s <= 0.0:
            return (t >= self.onset).astype(np.float64)
        frac = np.clip((t - self.onset) / self.ramp_s, 0.0, 1.0)
        out: NDArray[np.float64] = frac if self.exponent == 1.0 else frac**self.exponent
        return out

    def visible_time(self) -> float | None:
        """When the customer can first notice the fault (None: never)."""
        if self.visible_after_s is not None:
            return self.onset + self.visible_after_s
        if self.visible_at is None:
            return None
        return self.onset + float(self.visible_at ** (1.0 / self.exponent)) * self.ramp_s


class FaultKind:
    """A kind of fault: which products it hits, how a plan is drawn and how it shows.

    Physical kinds (a leak, a worn bearing) are modelled by the product's physics from the
    plan's severity; sensor-level kinds override :meth:`apply` to change the readings afterwards.
    """

    name: ClassVar[str]
    course: ClassVar[Course]
    #: multiplies the customer's call delay: a cold house gets a faster call than a slow drift
    call_urgency: ClassVar[float] = 1.0

    def plan(self, product: Product, onset: float, typical_ramp_s: float, horizon_end: float,
             rng: np.random.Generator) -> FaultPlan:
        """Draw one fault of this kind starting at ``onset``."""
        raise NotImplementedError

    def apply(self, plan: FaultPlan, product: Product, t: NDArray[np.float64],
              values: NDArray[np.float64], severity: NDArray[np.float64],
              u: NDArray[np.float64], state: dict[str, float]) -> None:
        """Change ``values`` in place for a sensor-level fault; ``u`` holds two uniform random
        numbers per sample, ``state`` persists across blocks. Physical kinds do nothing here."""
        return None


def slow_plan(kind: str, onset: float, typical_ramp_s: float, rng: np.random.Generator,
              scale: float, exponent: float = 1.0,
              visible: tuple[float, float] | None = (0.6, 0.8)) -> FaultPlan:
    """A ramp of about ``scale`` × the typical ramp, seen by the customer in the ``visible``
    range of severity (None: never)."""
    ramp = typical_ramp_s * scale * float(np.exp(rng.normal(0.0, 0.25)))
    visible_at = float(rng.uniform(*visible)) if visible is not None else None
    return FaultPlan(kind=kind, onset=onset, ramp_s=ramp, visible_at=visible_at,
                     exponent=exponent)
