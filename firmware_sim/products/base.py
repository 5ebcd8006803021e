"""What every simulated product provides, and the small kernels their physics share.

A product is stateless: everything one device carries from block to block (weather, state of
charge, a lagged temperature) lives in its :class:`DeviceTraits`, so a device can be generated
in blocks of any length.

>>> import numpy as np
>>> lag(0.0, np.full(3, 0.5), np.array([2.0, 2.0, 2.0])).tolist()
[1.0, 1.5, 1.75]
>>> bool(is_weekend(np.array([1_767_225_600.0]))[0])  # 2026-01-01 was a Thursday
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DAY",
    "DeviceTraits",
    "Product",
    "bump",
    "hour_of_day",
    "is_weekend",
    "lag",
    "quantise",
]

DAY = 86_400.0


@dataclass(slots=True)
class DeviceTraits:
    """Per-device variation (installation, climate) and slowly varying state (weather)."""

    params: dict[str, float]
    state: dict[str, float] = field(default_factory=dict)


class Product(Protocol):
    """A product type: the fields it reports, the faults it can have and its physics.

    ``physical_faults`` are the fault kinds :meth:`simulate` models itself (a leak changes
    several fields consistently); sensor-level faults are applied afterwards by the fault library.
    ``power_field`` is the field a loose connection interrupts; ``firmware_shift`` the field and
    offset a firmware update moves (a new control curve, not a fault).
    """

    name: str
    id_prefix: str
    fields: tuple[str, ...]
    fault_kinds: tuple[str, ...]
    physical_faults: frozenset[str]
    power_field: str
    sensor_fields: tuple[str, ...]
    firmware_shift: tuple[str, float]

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Draw one device's installation and climate."""
        ...

    def simulate(
        self,
        traits: DeviceTraits,
        t: NDArray[np.float64],
        rng: np.random.Generator,
        faults: dict[str, NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Telemetry (len(t) × len(fields)) for timestamps ``t``; ``faults`` maps a fault kind to
        its severity in [0, 1] at every timestamp. Draws a fixed number of random numbers per
        sample, so blocks of any length give the same series."""
        ...


@numba.njit(cache=True, nogil=True)
def _lag_kernel(y0: float, a: NDArray[np.float64], x: NDArray[np.float64],
                out: NDArray[np.float64]) -> float:
    y = y0
    for i in range(x.shape[0]):
        y = a[i] * y + (1.0 - a[i]) * x[i]
        out[i] = y
    return y


def lag(y0: float, a: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """First-order lag ``y[i] = a[i]·y[i-1] + (1-a[i])·x[i]`` starting from ``y0``.

    With ``a`` near 1 and ``x`` white noise this is an AR(1) walk (weather); with ``x`` a driving
    signal it is a thermal lag. The last value is ``out[-1]``: carry it to the next block.
    """
    out = np.empty_like(x)
    if x.shape[0]:
        _lag_kernel(y0, np.ascontiguousarray(a, dtype=np.float64),
                    np.ascontiguousarray(x, dtype=np.float64), out)
    return out


def hour_of_day(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Hour of the (UTC) day in [0, 24)."""
    return (t % DAY) / 3600.0


def is_weekend(t: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Saturday or Sunday (epoch day 0 was a Thursday)."""
    return ((np.floor(t / DAY) + 3) % 7) >= 5


def bump(hour: NDArray[np.float64], centre: float | NDArray[np.float64],
         width_h: float) -> NDArray[np.float64]:
    """A daily Gaussian bump around ``centre`` o'clock (wraps at midnight)."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    out: NDArray[np.float64] = np.exp(-0.5 * (d / width_h) ** 2)
    return out


def quantise(values: NDArray[np.float64], steps: NDArray[np.float64]) -> NDArray[np.float64]:
    """Round each column to its sensor's resolution."""
    out: NDArray[np.float64] = np.round(values / steps) * steps
    return out
