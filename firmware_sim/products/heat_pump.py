"""An air-to-water heat pump: heating load follows the outdoor temperature through the day.

Fields: compressor current (A), discharge temperature (°C), suction pressure (bar) and outdoor
temperature (°C). A refrigerant leak raises the discharge temperature (less refrigerant, more
superheat), lowers the suction pressure and the compressor current.

>>> import numpy as np
>>> hp = HeatPump()
>>> rng = np.random.default_rng(3)
>>> traits = hp.traits(rng)
>>> t = np.arange(0, 3600 * 24, 60.0)
>>> healthy = hp.simulate(traits, t, rng, {})
>>> leak = hp.simulate(traits, t, rng, {"refrigerant_leak": np.ones_like(t)})
>>> col = hp.fields.index("discharge_temp")
>>> bool(leak[:, col].mean() > healthy[:, col].mean() + 10)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from firmware_sim.products.base import DeviceTraits

__all__ = ["HeatPump"]

_DAY = 86_400.0


class HeatPump:
    """Vectorised heat-pump physics with per-device climate and installation."""

    name = "heat_pump"
    fields = ("compressor_current", "discharge_temp", "suction_pressure", "outdoor_temp")
    fault_kinds = ("refrigerant_leak",)

    def traits(self, rng: np.random.Generator) -> DeviceTraits:
        """Climate (mean outdoor temperature, daily swing) and installation (size, efficiency)."""
        return DeviceTraits(
            params={
                "climate_c": float(rng.normal(6.0, 3.0)),
                "swing_c": float(rng.uniform(3.0, 6.0)),
                "size": float(rng.uniform(0.8, 1.2)),
                "discharge_base": float(rng.normal(55.0, 2.0)),
                "phase_h": float(rng.uniform(-1.5, 1.5)),
            },
            state={"weather": float(rng.normal(0.0, 1.5))},
        )

    def simulate(
        self,
        traits: DeviceTraits,
        t: NDArray[np.float64],
        rng: np.random.Generator,
        faults: dict[str, NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Telemetry for timestamps ``t`` (one row per timestamp)."""
        p = traits.params
        n = t.shape[0]
        # weather: a slow AR(1) walk around the climate, carried across blocks
        steps = rng.standard_normal(n) * 0.02
        weather = np.empty(n)
        w = traits.state["weather"]
        for i in range(n):  # n is one block of one device: cheap
            w = 0.9995 * w + steps[i]
            weather[i] = w
        traits.state["weather"] = w
        hour = (t % _DAY) / 3600.0
        outdoor = (
            p["climate_c"]
            + weather
            + p["swing_c"] * np.sin(2 * np.pi * (hour - 9.0 - p["phase_h"]) / 24.0)
        )
        load = np.clip((18.0 - outdoor) / 20.0, 0.1, 1.0)
        leak = faults.get("refrigerant_leak", np.zeros(n))
        current = 3.0 + 7.0 * load * p["size"] - 1.2 * leak
        discharge = p["discharge_base"] + 8.0 * load + 30.0 * leak
        suction = 3.2 + 0.06 * outdoor - 1.4 * leak
        noise = rng.standard_normal((n, 4))
        values = np.column_stack(
            (
                current + 0.12 * noise[:, 0],
                discharge + 0.4 * noise[:, 1],
                suction + 0.04 * noise[:, 2],
                outdoor + 0.2 * noise[:, 3],
            )
        )
        # sensors report with fixed resolution
        return np.round(values, 2)
