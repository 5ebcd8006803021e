"""Every field of every simulated product has a unit on the console's charts (issue 24)."""

from __future__ import annotations

from firmware_sim.products import PRODUCTS
from forewarn.console.units import FIELD_UNITS


def test_every_product_field_has_a_unit() -> None:
    assert set(FIELD_UNITS) == set(PRODUCTS)
    for name, product in PRODUCTS.items():
        assert set(FIELD_UNITS[name]) == set(product.fields), name
        for field in product.fields:
            # the product's docstring states the unit it simulates in
            assert FIELD_UNITS[name][field], (name, field)
