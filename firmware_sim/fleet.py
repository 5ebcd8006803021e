"""A simulated fleet: devices of one product type, some with an injected fault, plus ground truth.

Deterministic for a seed, and each device depends only on (seed, its index): device 17 is the same
whatever the fleet size.

>>> fleet = Fleet(FleetConfig(devices=3, seed=1, horizon_s=3600.0))
>>> [d.device_id for d in fleet.devices]
['hp-0000', 'hp-0001', 'hp-0002']
>>> t, values = fleet.devices[0].next_block(600.0)
>>> values.shape
(10, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from firmware_sim.calls import CallModel
from firmware_sim.faults import FaultPlan
from firmware_sim.products import PRODUCTS, DeviceTraits, Product
from firmware_sim.truth import FaultTruth

__all__ = ["DEFAULT_START", "Fleet", "FleetConfig", "SimDevice"]

#: 2026-01-01T00:00:00Z: simulated runs start here unless told otherwise
DEFAULT_START = 1_767_225_600.0


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What fleet to simulate."""

    devices: int = 12
    seed: int = 1
    product: str = "heat_pump"
    tenant: str = "demo"
    start: float = DEFAULT_START
    horizon_s: float = 72 * 3600.0
    sample_period_s: float = 60.0
    fault_fraction: float = 0.25
    #: a fault begins somewhere in this part of the run (fractions of the horizon)
    onset_window: tuple[float, float] = (0.1, 0.35)
    fault_ramp_s: float = 48 * 3600.0
    call_model: CallModel = field(default_factory=CallModel)


class SimDevice:
    """One simulated device: its traits, its fault (if any) and its own random stream."""

    def __init__(self, config: FleetConfig, index: int, product: Product) -> None:
        self.index = index
        self.tenant = config.tenant
        self.product = product
        self.device_id = f"hp-{index:04d}" if product.name == "heat_pump" else f"{index:05d}"
        self._period = config.sample_period_s
        self._rng = np.random.default_rng([config.seed, index])
        self.traits: DeviceTraits = product.traits(self._rng)
        self.fault: FaultPlan | None = None
        self.truth: FaultTruth | None = None
        faulty = self._rng.random() < config.fault_fraction
        onset_frac = self._rng.uniform(*config.onset_window)
        kind = product.fault_kinds[int(self._rng.integers(len(product.fault_kinds)))]
        call_rng = np.random.default_rng([config.seed, index, 1])
        if faulty:
            self.fault = FaultPlan(
                kind=kind,
                onset=config.start + onset_frac * config.horizon_s,
                ramp_s=config.fault_ramp_s,
            )
            visible = self.fault.visible_time()
            self.truth = FaultTruth(
                device_id=self.device_id,
                product=product.name,
                kind=kind,
                onset=self.fault.onset,
                visible=visible,
                call=config.call_model.call_time(visible, call_rng),
            )
        self._next_t = config.start

    def next_block(self, duration_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The next ``duration_s`` seconds of telemetry: timestamps and values (rows × fields)."""
        n = round(duration_s / self._period)
        t = self._next_t + self._period * np.arange(n, dtype=np.float64)
        self._next_t += n * self._period
        severities: dict[str, NDArray[np.float64]] = {}
        if self.fault is not None:
            severities[self.fault.kind] = self.fault.severity(t)
        return t, self.product.simulate(self.traits, t, self._rng, severities)


class Fleet:
    """The devices of one simulated run and their ground truth."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        product = PRODUCTS[config.product]
        self.devices = [SimDevice(config, i, product) for i in range(config.devices)]

    @property
    def ground_truth(self) -> list[FaultTruth]:
        """Every injected fault."""
        return [d.truth for d in self.devices if d.truth is not None]
