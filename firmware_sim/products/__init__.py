"""Simulated connected products, one module per product type.

>>> sorted(PRODUCTS)
['heat_pump', 'home_battery', 'water_pump']
"""

from firmware_sim.products.base import DeviceTraits, Product
from firmware_sim.products.heat_pump import HeatPump
from firmware_sim.products.home_battery import HomeBattery
from firmware_sim.products.water_pump import WaterPump

__all__ = ["PRODUCTS", "DeviceTraits", "HeatPump", "HomeBattery", "Product", "WaterPump"]

#: product name → product model
PRODUCTS: dict[str, Product] = {
    "heat_pump": HeatPump(),
    "home_battery": HomeBattery(),
    "water_pump": WaterPump(),
}
