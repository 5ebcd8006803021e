"""Installation quirks: recurring false-alarm sources with ground truth (issue 20).

A quirk is no fault: nothing breaks, the customer never calls. A device whose temperature
sensor sits near a heat source the household uses on one day of the week (a sauna stove
beside the heat pump's discharge-pipe sensor, a wood stove in the pump room, a tumble dryer
beside the battery) reads several degrees warm for a few hours, every week at about the same
time. Detection cannot tell a weekly heat soak from an overheating circuit by the readings
alone, so the shipped rules open the same rule's case on the same device again and again:
the case a team learns to mark ``false_alarm`` (reason ``installation``) and wants never to
see again. Only the evaluation's matching reads :class:`QuirkTruth`; every case on such a
device is a false case (quirks go only to devices without a fault of their own).

Each episode starts within ±45 minutes of the device's weekly time and lasts 2–4 hours; the
reading approaches the extra heat with a 20-minute time constant and falls back with the same
one after the stove is off (a trapezoid with exponential edges, computed from the time alone,
so blocks of any size agree).

>>> import numpy as np
>>> from firmware_sim.products import PRODUCTS
>>> quirk = draw_quirk(PRODUCTS["heat_pump"], 0.0, 30 * 86_400.0, np.random.default_rng(4))
>>> quirk.field, quirk.episodes.shape[0] in (4, 5)
('discharge_temp', True)
>>> start, end = quirk.episodes[1]
>>> warm = quirk.offset(np.array([start - 60.0, start + 3600.0, end + 4 * 3600.0]))
>>> bool(warm[0] == 0.0), bool(warm[1] > 0.9 * quirk.rise), bool(warm[2] < 0.01 * quirk.rise)
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import DAY, Product

__all__ = ["QUIRK_FIELDS", "QUIRK_KIND", "Quirk", "QuirkTruth", "draw_quirk"]

QUIRK_KIND = "weekly_heat_source"
#: the temperature sensor of each product a nearby heat source warms, and the range of the
#: extra heat (°C) at its full soak
QUIRK_FIELDS: dict[str, tuple[str, float, float]] = {
    "heat_pump": ("discharge_temp", 8.0, 14.0),
    "water_pump": ("motor_temp", 6.0, 12.0),
    "home_battery": ("pack_temp", 10.0, 16.0),
}
_WEEK = 7 * DAY
#: the reading follows the heat source with this time constant, up and down
_TAU_S = 1200.0
#: the household's day for it: mostly the weekend (epoch day 0 was a Thursday: 2 = Saturday)
_DAY_WEIGHTS = np.array([0.08, 0.08, 0.3, 0.3, 0.08, 0.08, 0.08])


@dataclass(frozen=True, slots=True)
class QuirkTruth:
    """What the ground truth says of a quirk (written beside the faults, never a fault)."""

    device_id: str
    product: str
    kind: str
    field: str
    #: the first episode's start (true time), the weekly rhythm and the extra heat (°C)
    first: float
    period_s: float
    rise: float
    episodes: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"device_id": self.device_id, "product": self.product, "kind": self.kind,
                "field": self.field, "first": self.first, "period_s": self.period_s,
                "rise": self.rise, "episodes": self.episodes}


@dataclass(frozen=True, slots=True, eq=False)
class Quirk:
    """One device's weekly heat source: its episodes (rows of start, end) and extra heat."""

    field: str
    rise: float
    episodes: NDArray[np.float64]

    def offset(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """The extra heat the sensor reads at each timestamp (true time)."""
        out = np.zeros(t.shape[0])
        if not t.shape[0]:
            return out
        for start, end in self.episodes:
            if start > t[-1]:
                break
            if end + 10 * _TAU_S < t[0]:
                continue
            on = (t >= start) & (t < end)
            out[on] = 1.0 - np.exp(-(t[on] - start) / _TAU_S)
            peak = 1.0 - np.exp(-(end - start) / _TAU_S)
            after = (t >= end) & (t < end + 10 * _TAU_S)
            out[after] = peak * np.exp(-(t[after] - end) / _TAU_S)
        # the sensor's resolution (0.1 °C for each of these temperatures)
        return np.round(self.rise * out, 1)

    def truth(self, device_id: str, product: str) -> QuirkTruth:
        """Its ground truth."""
        return QuirkTruth(device_id, product, QUIRK_KIND, self.field,
                          float(self.episodes[0, 0]) if self.episodes.size else 0.0, _WEEK,
                          round(self.rise, 2), int(self.episodes.shape[0]))


def draw_quirk(product: Product, start: float, end: float, rng: np.random.Generator) -> Quirk:
    """A weekly heat source near the device's temperature sensor, from ``start`` to ``end``."""
    field, low, high = QUIRK_FIELDS[product.name]
    weekday = int(rng.choice(7, p=_DAY_WEIGHTS))
    hour = float(rng.uniform(10.0, 19.0))
    rise = float(rng.uniform(low, high))
    # the first such weekday at or after the start (epoch day 0 was a Thursday)
    first_day = np.floor(start / DAY)
    first_day += (weekday - (first_day + 3)) % 7
    starts, ends = [], []
    when = first_day * DAY + hour * 3600.0
    while when < end:
        begin = when + float(rng.uniform(-2700.0, 2700.0))
        starts.append(begin)
        ends.append(begin + float(rng.uniform(2 * 3600.0, 4 * 3600.0)))
        when += _WEEK
    return Quirk(field, rise, np.column_stack((starts, ends)) if starts
                 else np.zeros((0, 2)))
