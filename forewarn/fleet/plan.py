"""Which simulated fleet ``forewarn fleet`` runs: the demo's (for simulated time) or heat pumps
streaming in real time (the load test).

>>> plan = FleetPlan(devices=4, hours=2.0, seed=7, start=1_767_225_600.0)
>>> [device.device_id for device in demo_fleet(plan).devices]
['hp-0000', 'hp-0001', 'hp-0002', 'hp-0003']
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from firmware_sim.fleet import Fleet, FleetConfig
from forewarn.demo import DemoOptions

__all__ = [
    "DEMO_FAULT_FRACTION",
    "DEMO_FAULT_KINDS",
    "DEMO_ONSET_WINDOW",
    "FleetPlan",
    "demo_fleet",
    "load_test_fleet",
]

#: the demo's faults: what ``forewarn demo`` injects (its DemoOptions' defaults)
DEMO_FAULT_KINDS: tuple[str, ...] = DemoOptions().fault_kinds
DEMO_FAULT_FRACTION = DemoOptions().fault_fraction
#: faults begin after 30 % of the run: detectors learn a full daily cycle first
DEMO_ONSET_WINDOW = (0.3, 0.5)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """Which simulated fleet: ``devices`` devices from index ``first_index``, ``hours`` long
    from ``start`` (epoch seconds of simulated time)."""

    devices: int
    hours: float
    seed: int
    start: float
    tenant: str = "demo"
    first_index: int = 0
    products: tuple[str, ...] = ()
    fault_kinds: tuple[str, ...] = DEMO_FAULT_KINDS
    fault_fraction: float = DEMO_FAULT_FRACTION


def demo_fleet(plan: FleetPlan) -> Fleet:
    """The demo's fleet for ``plan``: same seed, same devices, faults and imperfections."""
    return Fleet(FleetConfig(
        devices=plan.first_index + plan.devices, seed=plan.seed, tenant=plan.tenant,
        start=plan.start, horizon_s=plan.hours * 3600.0, products=plan.products,
        onset_window=DEMO_ONSET_WINDOW, fault_kinds=plan.fault_kinds,
        fault_fraction=plan.fault_fraction,
    ))


def load_test_fleet(devices: int, seed: int, tenant: str, rate_hz: float,
                    first_index: int = 0) -> Fleet:
    """The heat pumps of a load test: one sample every ``1 / rate_hz`` s, starting now."""
    return Fleet(FleetConfig(devices=first_index + devices, seed=seed, tenant=tenant,
                             start=time.time(), sample_period_s=1.0 / rate_hz))
