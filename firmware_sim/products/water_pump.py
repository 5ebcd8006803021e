"""A domestic booster pump: it runs when the household draws water, and on warm evenings for the
garden.

Fields: flow (l/min), outlet pressure (bar), motor current (A), vibration (mm/s RMS) and motor
temperature (°C). Demand peaks in the morning and evening, later and longer at weekends.

Physical faults: bearing wear raises vibration (accelerating), motor temperature and current; a
clogged inlet filter cuts flow and pressure; a failed motor (component failure) stops everything.

>>> import numpy as np
>>> pump = WaterPump()
>>> traits = pump.traits(np.random.default_rng(3))
>>> t = np.arange(0, 3600 * 24, 60.0)
>>> healthy = pump.simulate(traits, t, np.random.default_rng(1), {})
>>> worn = pump.simulate(traits, t, np.random.default_rng(1), {"bearing_wear": np.ones_like(t)})
>>> col = pump.fields.index("vibration")
>>> bool(worn[:, col].mean() > healthy[:, col].mean() + 2)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import DeviceTraits, bump, hour_of_day, is_weekend, lag, quantise

__all__ = ["WaterPump"]

_STEPS = np.array([0.1, 0.01, 0.01, 0.01, 0.1])
_NOISE = np.array([0.3, 0.03, 0.05, 0.06, 0.15])
_WEATHER_TAU_S = 48 * 3600.0
#: a heat wave at its full heat warms the air around the pump by this much
_HEAT_WAVE_C = 10.0


class WaterPump:
    """Vectorised booster-pump physics with per-device household and installation."""

    name: str = "water_pump"
    id_prefix: str = "wp"
    fields: tuple[str, ...] = (
        "flow", "pressure", "motor_current", "vibration", "motor_temp",
    )
    fault_kinds: tuple[str, ...] = (
        "bearing_wear", "clogged_filter", "component_failure",
        "sensor_stuck", "sensor_spikes", "loose_connection",
    )
    physical_faults: frozenset[str] = frozenset(fault_kinds[:3])
    power_field: str = "motor_current"
    sensor_fields: tuple[str, ...] = ("pressure", "motor_temp")
    firmware_shift: tuple[str, float] = ("pressure", 0.25)

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Household demand, garden, pump set-point and installation."""
        return DeviceTraits(
            params={
                "demand": float(rng.uniform(0.7, 1.4)),
                "garden": float(rng.uniform(0.0, 1.0)),
                "p_set": float(rng.uniform(2.8, 3.8)),
                "pump_k": float(rng.uniform(0.0015, 0.0025)),
                "i0": float(rng.uniform(0.4, 0.8)),
                "vib0": float(rng.uniform(0.6, 1.2)),
                "ambient_c": float(rng.normal(14.0, 3.0)),
                "morning_h": float(rng.uniform(6.0, 7.5)),
            },
            state={"weather": float(rng.normal()), "temp": 0.0},
        )

    def simulate(
        self,
        traits: DeviceTraits,
        t: NDArray[np.float64],
        rng: np.random.Generator,
        faults: dict[str, NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Telemetry for timestamps ``t`` (one row per timestamp)."""
        p, s, n = traits.params, traits.state, t.shape[0]
        eps = rng.standard_normal((n, 7))
        dt = np.diff(t, prepend=s.get("last_t", t[0] - 60.0) if n else 0.0)
        a = np.exp(-np.abs(dt) / _WEATHER_TAU_S)
        weather = lag(s["weather"], a, eps[:, 0] * np.sqrt((1 + a) / np.maximum(1 - a, 1e-12)))
        hour = hour_of_day(t)
        weekend = is_weekend(t).astype(np.float64)
        zero = np.zeros(n)
        # a heat wave (a region's weather, ``firmware_sim.faults.heat_wave``): warmer air,
        # and gardens watered more in the evening
        hot = faults.get("heat_wave", zero)
        warm = np.clip(weather, 0.0, None) + 1.5 * hot
        demand = p["demand"] * (
            2.0 + 14.0 * bump(hour, p["morning_h"] + 1.5 * weekend, 0.8)
            + 10.0 * bump(hour, 19.5, 1.5) + 8.0 * weekend * bump(hour, 11.0, 2.0)
            + 12.0 * p["garden"] * warm * bump(hour, 20.5, 0.7))
        demand = np.maximum(0.0, demand * (1.0 + 0.12 * eps[:, 1]))

        wear = faults.get("bearing_wear", zero)
        clog = faults.get("clogged_filter", zero)
        failed = faults.get("component_failure", zero)
        running = 1.0 - failed

        flow = demand * (1.0 - 0.5 * clog) * running
        pressure = (p["p_set"] - p["pump_k"] * flow**2 * (1.0 + 3.0 * clog) - 0.8 * clog) * running
        pressure += 0.4 * failed  # what the pressure tank still holds
        current = (p["i0"] + 0.09 * flow * p["p_set"] / 3.3 + 0.4 * wear) * (1.0 - 0.1 * clog)
        current *= running
        vibration = (p["vib0"] * (1.0 + 0.01 * flow) + 4.0 * wear + 0.6 * clog) * running
        vibration += 0.1 * failed
        heat = (p["ambient_c"] + 0.3 * weather + _HEAT_WAVE_C * hot
                + 6.0 * current / (p["i0"] + 1.5) + 10.0 * wear)
        temp = lag(s["temp"] or p["ambient_c"], np.exp(-np.abs(dt) / 1200.0), heat)
        if n:
            s["weather"], s["temp"], s["last_t"] = float(weather[-1]), float(temp[-1]), float(t[-1])

        values = np.column_stack((flow, pressure, current, vibration, temp))
        noise = eps[:, 2:] * _NOISE
        noise[:, 3] *= 1.0 + 2.0 * wear  # a worn bearing is also a noisier one
        values += noise
        # flow, current and vibration sensors do not read below zero
        values[:, [0, 2, 3]] = np.maximum(values[:, [0, 2, 3]], 0.0)
        return quantise(values, _STEPS)
