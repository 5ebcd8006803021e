"""What every simulated product provides: its fields, per-device traits and vectorised physics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["DeviceTraits", "Product"]


@dataclass(slots=True)
class DeviceTraits:
    """Per-device variation (installation, climate) and slowly varying state (weather)."""

    params: dict[str, float]
    state: dict[str, float] = field(default_factory=dict)


class Product(Protocol):
    """A product type: fields it reports and how they evolve."""

    name: str
    fields: tuple[str, ...]
    fault_kinds: tuple[str, ...]

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Draw one device's installation and climate."""

    def simulate(
        self,
        traits: DeviceTraits,
        t: NDArray[np.float64],
        rng: np.random.Generator,
        faults: dict[str, NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Telemetry (len(t) × len(fields)) for timestamps ``t``; ``faults`` maps a fault kind to
        its severity in [0, 1] at every timestamp."""
