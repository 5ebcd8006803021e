"""A home battery pack charged by rooftop solar and drained by the household in the evening.

Fields: pack voltage (V), pack current (A, positive while charging), lowest and highest cell
voltage (V), pack temperature (°C) and state of charge (%). Sun (with cloudy spells) charges it
around noon, the household drains it in the morning and evening, more at weekends.

Physical faults: cell imbalance spreads the cell voltages, worst near full and near empty;
capacity fade makes the state of charge swing faster and the voltage sag more under load; a
failed contactor (component failure) stops all current.

>>> import numpy as np
>>> pack = HomeBattery()
>>> traits = pack.traits(np.random.default_rng(3))
>>> t = np.arange(0, 3600 * 24, 60.0)
>>> healthy = pack.simulate(traits, t, np.random.default_rng(1), {})
>>> traits = pack.traits(np.random.default_rng(3))
>>> bad = pack.simulate(traits, t, np.random.default_rng(1), {"cell_imbalance": np.ones_like(t)})
>>> lo, hi = pack.fields.index("cell_v_min"), pack.fields.index("cell_v_max")
>>> spread = lambda v: float(np.mean(v[:, hi] - v[:, lo]))
>>> spread(bad) > spread(healthy) + 0.1
True
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import DeviceTraits, bump, hour_of_day, is_weekend, lag, quantise

__all__ = ["HomeBattery"]

_CELLS = 16
# reading resolution per column: pack V, pack A, cell min V, cell max V, temperature °C
_STEPS = np.array([0.01, 0.1, 0.001, 0.001, 1.0])
_NOISE = np.array([0.05, 0.3, 0.002, 0.002, 0.2])
_WEATHER_TAU_S = 12 * 3600.0
_SOC_MIN, _SOC_MAX = 10.0, 100.0


@numba.njit(cache=True, nogil=True)
def _integrate_soc(soc0: float, current: NDArray[np.float64], dt: NDArray[np.float64],
                   capacity_ah: NDArray[np.float64], soc: NDArray[np.float64],
                   taken: NDArray[np.float64]) -> float:
    """Coulomb counting with a full and an empty limit: the BMS refuses current beyond them."""
    s = soc0
    for i in range(current.shape[0]):
        step = current[i] * dt[i] / 3600.0 / capacity_ah[i] * 100.0
        nxt = s + step
        if nxt > _SOC_MAX:
            nxt = _SOC_MAX
        elif nxt < _SOC_MIN:
            nxt = _SOC_MIN
        taken[i] = current[i] if step == 0.0 else current[i] * (nxt - s) / step
        s = nxt
        soc[i] = s
    return s


class HomeBattery:
    """Vectorised 16-cell LFP pack with solar charging and household use."""

    name: str = "home_battery"
    id_prefix: str = "bat"
    fields: tuple[str, ...] = (
        "pack_voltage", "pack_current", "cell_v_min", "cell_v_max", "pack_temp", "soc",
    )
    fault_kinds: tuple[str, ...] = (
        "cell_imbalance", "capacity_fade", "component_failure",
        "sensor_stuck", "sensor_spikes", "loose_connection",
    )
    physical_faults: frozenset[str] = frozenset(fault_kinds[:3])
    power_field: str = "pack_current"
    sensor_fields: tuple[str, ...] = ("pack_temp", "pack_voltage")
    firmware_shift: tuple[str, float] = ("pack_temp", 1.5)

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Solar array, household use, pack size and the spread of its cells."""
        return DeviceTraits(
            params={
                "pv_kw": float(rng.uniform(3.0, 9.0)),
                "use_kw": float(rng.uniform(0.3, 0.6)),
                "capacity_ah": float(rng.uniform(150.0, 250.0)),
                "r_int": float(rng.uniform(0.015, 0.03)),
                "spread_v": float(rng.uniform(0.004, 0.012)),
                "ambient_c": float(rng.normal(18.0, 3.0)),
                "evening_h": float(rng.uniform(18.5, 20.5)),
            },
            state={"weather": float(rng.normal()), "soc": float(rng.uniform(30.0, 70.0)),
                   "temp": 0.0},
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
        cloud = 1.0 / (1.0 + np.exp(-1.5 * weather))
        sun = np.maximum(0.0, np.sin(np.pi * (hour - 6.5) / 12.5))
        solar = p["pv_kw"] * sun * (1.0 - 0.8 * cloud)
        use = p["use_kw"] * (1.0 + 2.0 * bump(hour, 7.5 + weekend, 1.0)
                             + 3.0 * bump(hour, p["evening_h"], 1.5)
                             + 1.5 * weekend * bump(hour, 13.0, 3.0))
        use = np.maximum(0.1, use * (1.0 + 0.15 * eps[:, 1]))

        zero = np.zeros(n)
        imbalance = faults.get("cell_imbalance", zero)
        fade = faults.get("capacity_fade", zero)
        failed = faults.get("component_failure", zero)

        wanted = np.clip((solar - use) * 1000.0 / 51.2, -100.0, 100.0) * (1.0 - failed)
        capacity = p["capacity_ah"] * (1.0 - 0.35 * fade)
        soc = np.empty(n)
        current = np.empty(n)
        if n:
            s["soc"] = _integrate_soc(s["soc"], wanted, np.abs(dt), capacity, soc, current)
        r_int = p["r_int"] * (1.0 + 2.0 * fade)
        ocv = (3.2 + 0.15 * soc / 100.0 + 0.25 * np.exp(-(100.0 - soc) / 4.0)
               - 0.4 * np.exp(-soc / 4.0))
        cell = ocv + current * r_int / _CELLS
        spread = p["spread_v"] + 0.25 * imbalance * (0.4 + np.abs(soc - 50.0) / 50.0)
        heat = p["ambient_c"] + 0.5 * weather + 0.0012 * current**2
        temp = lag(s["temp"] or p["ambient_c"], np.exp(-np.abs(dt) / 1800.0), heat)
        if n:
            s["weather"], s["temp"], s["last_t"] = float(weather[-1]), float(temp[-1]), float(t[-1])

        values = np.column_stack((_CELLS * cell, current, cell - spread / 2, cell + spread / 2,
                                  temp, soc))
        values[:, :5] += eps[:, 2:] * _NOISE
        values[:, 5] = np.round(values[:, 5])
        values[:, :5] = quantise(values[:, :5], _STEPS)
        return values
