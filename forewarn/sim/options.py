"""What ``forewarn sim evaluate`` simulates and how it streams it, and what it keeps to plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.detect import DetectorConfig
from core.detect.peer_config import PeerConfig
from firmware_sim.calls import CallModel
from firmware_sim.fleet import FleetConfig, FleetFault
from firmware_sim.imperfections import Imperfections
from firmware_sim.products import PRODUCTS
from rules.incidents import IncidentPolicy

__all__ = ["EvalOptions", "TimelineTrace"]

_H = 3600.0


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """What to simulate and how to stream it."""

    devices: int = 100
    days: float = 7.0
    seed: int = 1
    products: tuple[str, ...] = tuple(PRODUCTS)
    fault_fraction: float = 0.25
    #: limit the faults injected to these kinds (empty: every kind)
    fault_kinds: tuple[str, ...] = ()
    #: rules files: every ``*.yaml`` in this directory
    rules_dir: Path = Path("config/rules")
    #: the evaluation streams batches this long (bigger is faster; notices are still timed by
    #: the agent's own 10-minute batches, see :class:`firmware_sim.fleet.Delivery`)
    batch_s: float = 6 * 3600.0
    #: record the peer detector's flags (the fleet incidents' evidence) when a live service
    #: would have raised them: its judgement of a bucket waits ``[peer] lag_s`` there, but
    #: ``batch_s`` + a bucket here, where every peer's long batch covering it must be in
    live_flags: bool = True
    imperfections: Imperfections = field(default_factory=Imperfections)
    call_model: CallModel = field(default_factory=CallModel)
    #: the service's default detector (settings [detector] keys layer over it)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    #: the first days only teach the detectors (no rules, no faults): a running service has
    #: learned from history; false cases are counted over the days after
    learn_days: float = 1.0
    #: product limits (``config/limits.yaml``) core hands to each device's detector; None: none
    limits: Path | None = Path("config/limits.yaml")
    #: processes, each streaming a share of the devices through its own pipelines
    workers: int = 1
    #: how many faulty devices to keep telemetry of, for timeline plots
    trace: int = 0
    #: simulated agents resolve each false case as ``false_alarm`` as it opens (issue 20), so
    #: the rules learn from them (``rules.feedback``, default bounds)
    agents: bool = False
    #: faults shared by a cohort (``firmware_sim.fleet.FLEET_FAULTS`` with ``--fleet-faults``)
    fleet_faults: tuple[FleetFault, ...] = ()
    #: fleet incidents over the registry's cohorts (the service's ``[incidents]`` defaults)
    incidents: IncidentPolicy = field(default_factory=IncidentPolicy)
    #: the service's peer detector (settings [peer] keys); its flags are reported apart
    peer: PeerConfig = field(default_factory=PeerConfig)
    #: share of the devices without a fault that get an installation quirk, a weekly heat
    #: source near a temperature sensor (``firmware_sim.quirks``: recurring false cases)
    quirk_fraction: float = 0.0

    def fleet_config(self) -> FleetConfig:
        """The fleet these options describe; faults start after the learning days."""
        horizon = self.days * 86_400.0
        first = min(0.5, self.learn_days * 86_400.0 / horizon)
        return FleetConfig(
            devices=self.devices, seed=self.seed, products=self.products, tenant="sim",
            horizon_s=horizon, fault_fraction=self.fault_fraction, fault_kinds=self.fault_kinds,
            onset_window=(first, max(first, 0.7)),
            fault_ramp_s=min(48 * _H, 0.5 * horizon), call_model=self.call_model,
            imperfections=self.imperfections, fleet_faults=self.fleet_faults,
            quirk_fraction=self.quirk_fraction,
        )


@dataclass(slots=True)
class TimelineTrace:
    """Telemetry of one device kept for a timeline plot (true time)."""

    fields: tuple[str, ...]
    t: list[NDArray[np.float64]] = field(default_factory=list)
    values: list[NDArray[np.float64]] = field(default_factory=list)
