"""An air-to-water heat pump: heating load follows the weather, the clock and the household.

Fields: compressor current (A), discharge temperature (°C), suction pressure (bar), outdoor
temperature (°C) and water flow in the heating circuit (l/min). The load rises when it is cold,
drops at night (setback) and has hot-water peaks in the morning and evening, later at weekends.

Physical faults: a refrigerant leak raises the discharge temperature (less refrigerant, more
superheat) and lowers suction pressure and current; a clogged water strainer cuts the flow and
pushes discharge temperature and current up; a compressor failure stops the compressor.

>>> import numpy as np
>>> hp = HeatPump()
>>> traits = hp.traits(np.random.default_rng(3))
>>> t = np.arange(0, 3600 * 24, 60.0)
>>> healthy = hp.simulate(traits, t, np.random.default_rng(1), {})
>>> leak = hp.simulate(traits, t, np.random.default_rng(1), {"refrigerant_leak": np.ones_like(t)})
>>> col = hp.fields.index("discharge_temp")
>>> bool(leak[:, col].mean() > healthy[:, col].mean() + 10)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import DeviceTraits, bump, hour_of_day, is_weekend, lag, quantise

__all__ = ["HeatPump"]

_STEPS = np.array([0.1, 0.1, 0.01, 0.5, 0.1])
_NOISE = np.array([0.15, 0.5, 0.04, 0.2, 0.25])
#: weather: an AR(1) walk with a time constant of a day and a half and this standard deviation
_WEATHER_TAU_S = 36 * 3600.0
_WEATHER_SD = 2.5


class HeatPump:
    """Vectorised heat-pump physics with per-device climate, installation and household."""

    name: str = "heat_pump"
    id_prefix: str = "hp"
    fields: tuple[str, ...] = (
        "compressor_current", "discharge_temp", "suction_pressure", "outdoor_temp",
        "water_flow",
    )
    fault_kinds: tuple[str, ...] = (
        "refrigerant_leak", "clogged_filter", "component_failure",
        "sensor_stuck", "sensor_spikes", "loose_connection",
    )
    physical_faults: frozenset[str] = frozenset(fault_kinds[:3])
    power_field: str = "compressor_current"
    sensor_fields: tuple[str, ...] = ("discharge_temp", "outdoor_temp", "suction_pressure")
    firmware_shift: tuple[str, float] = ("discharge_temp", 2.0)

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Climate (mean outdoor temperature, daily swing), installation and household habits."""
        return DeviceTraits(
            params={
                "climate_c": float(rng.normal(6.0, 3.0)),
                "swing_c": float(rng.uniform(3.0, 6.0)),
                "size": float(rng.uniform(0.8, 1.2)),
                "discharge_base": float(rng.normal(52.0, 2.0)),
                "phase_h": float(rng.uniform(-1.5, 1.5)),
                "comfort_c": float(rng.normal(0.0, 0.7)),
                "setback_c": float(rng.uniform(1.5, 4.0)),
                "flow_nom": float(rng.uniform(14.0, 22.0)),
                "dhw_morning_h": float(rng.uniform(6.0, 8.0)),
                "dhw_evening_h": float(rng.uniform(18.0, 21.0)),
            },
            state={"weather": float(rng.normal(0.0, _WEATHER_SD))},
        )

    def simulate(
        self,
        traits: DeviceTraits,
        t: NDArray[np.float64],
        rng: np.random.Generator,
        faults: dict[str, NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Telemetry for timestamps ``t`` (one row per timestamp)."""
        p, n = traits.params, t.shape[0]
        eps = rng.standard_normal((n, 6))
        dt = np.diff(t, prepend=traits.state.get("last_t", t[0] - 60.0) if n else 0.0)
        a = np.exp(-np.abs(dt) / _WEATHER_TAU_S)
        weather = lag(traits.state["weather"], a,
                      eps[:, 0] * _WEATHER_SD * np.sqrt((1 + a) / np.maximum(1 - a, 1e-12)))
        if n:
            traits.state["weather"] = float(weather[-1])
            traits.state["last_t"] = float(t[-1])
        hour = hour_of_day(t)
        weekend = is_weekend(t).astype(np.float64)
        outdoor = (p["climate_c"] + weather
                   + p["swing_c"] * np.sin(2 * np.pi * (hour - 9.0 - p["phase_h"]) / 24.0))
        wake = np.where(weekend, 7.5, 6.0)
        night = (hour < wake) | (hour >= 22.5)
        setpoint = 20.5 + p["comfort_c"] - p["setback_c"] * night
        heating = np.clip((setpoint - outdoor) / 25.0, 0.0, 1.0)
        morning = p["dhw_morning_h"] + 1.5 * weekend
        dhw = 0.3 * bump(hour, morning, 0.4) + 0.25 * bump(hour, p["dhw_evening_h"], 0.5)
        load = np.clip(heating + dhw, 0.08, 1.0)

        zero = np.zeros(n)
        leak = faults.get("refrigerant_leak", zero)
        clog = faults.get("clogged_filter", zero)
        failed = faults.get("component_failure", zero)
        running = 1.0 - failed

        supply = 28.0 + 0.7 * np.maximum(0.0, 18.0 - outdoor)
        current = (1.2 + 8.5 * load * p["size"] - 1.5 * leak + 1.5 * clog) * running
        current += 0.4 * failed  # fan and circulation pump still run
        discharge = (p["discharge_base"] + 0.5 * (supply - 30.0) + 6.0 * load
                     + 28.0 * leak + 12.0 * clog) * running + (outdoor + 8.0) * failed
        suction = (2.6 + 0.08 * outdoor - 0.35 * load - 1.2 * leak - 0.3 * clog) * running
        suction += (6.5 + 0.15 * outdoor) * failed  # pressures equalise when it stops
        flow = p["flow_nom"] * (1.0 - 0.55 * clog) * (0.93 + 0.07 * load)

        values = np.column_stack((current, discharge, suction, outdoor, flow))
        values += eps[:, 1:] * _NOISE
        values[:, [0, 4]] = np.maximum(values[:, [0, 4]], 0.0)  # current and flow are not < 0
        return quantise(values, _STEPS)
