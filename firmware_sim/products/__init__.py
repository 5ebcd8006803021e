"""Simulated connected products, one module per product type."""

from firmware_sim.products.base import DeviceTraits, Product
from firmware_sim.products.heat_pump import HeatPump

__all__ = ["PRODUCTS", "DeviceTraits", "HeatPump", "Product"]

#: product name → product model
PRODUCTS: dict[str, Product] = {"heat_pump": HeatPump()}
