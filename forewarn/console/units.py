"""The unit of each telemetry field, for chart axes and the case page.

The simulated products' fields (``firmware_sim/products``, whose docstrings give these units;
a test checks that every field of every product has one here). A field of a product not listed
is shown without a unit.

>>> unit("heat_pump", "discharge_temp"), unit("water_pump", "vibration"), unit("x", "y")
('°C', 'mm/s', '')
"""

from __future__ import annotations

__all__ = ["FIELD_UNITS", "unit", "units"]

#: product → field → unit
FIELD_UNITS: dict[str, dict[str, str]] = {
    "heat_pump": {"compressor_current": "A", "discharge_temp": "°C", "suction_pressure": "bar",
                  "outdoor_temp": "°C", "water_flow": "l/min"},
    "home_battery": {"pack_voltage": "V", "pack_current": "A", "cell_v_min": "V",
                     "cell_v_max": "V", "pack_temp": "°C", "soc": "%"},
    "water_pump": {"flow": "l/min", "pressure": "bar", "motor_current": "A",
                   "vibration": "mm/s", "motor_temp": "°C"},
}


def unit(product: str, field: str) -> str:
    """The unit of ``field`` on ``product`` ("" when unknown)."""
    return FIELD_UNITS.get(product, {}).get(field, "")


def units(product: str, fields: list[str]) -> dict[str, str]:
    """field → unit for the fields that have one."""
    return {f: u for f in fields if (u := unit(product, f))}
