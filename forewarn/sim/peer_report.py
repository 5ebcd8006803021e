"""How early and how often the peer detector flags the simulated fleet's faulty devices, and
how often it flags healthy ones (issue 20).

A *flag* is one ``peer`` (or ``peer_cohort``) event of a device after the learning days. For
each detector: the share of the devices of the cohort-wide faults (``--fleet-faults``) flagged
after their fault's onset and the hours from onset to the first such flag; the same for the
devices' own faults; and the healthy devices flagged, per 1000 healthy device-days, and how
many of those flags are on the field the simulated firmware update shifts by design, after the
device's update (a real cohort move the cohort score is meant to see, though no fault).

>>> from firmware_sim.fleet import Fleet, FleetConfig
>>> fleet = Fleet(FleetConfig(devices=4, seed=1, fault_fraction=0.0))
>>> flags = [PeerFlag("hp-0001", kind, fleet.config.start + 7200.0, "a")
...          for kind in ("peer", "peer_cohort")]
>>> figures = peer_report(fleet, flags, learn_until=fleet.config.start)
>>> figures["peer_false_flags"], figures["peer_false_flags_per_1000_device_days"]
(1, 83.33)
>>> figures["peer_cohort_false_flags"], figures["peer_cohort_false_flags_rollout_step"]
(1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_sim.fleet import Fleet

__all__ = ["PEER_DETECTORS", "PeerFlag", "peer_report"]

#: the detectors whose events are peer flags
PEER_DETECTORS = ("peer", "peer_cohort", "peer_drift")

_H = 3600.0


@dataclass(frozen=True, slots=True)
class PeerFlag:
    """One peer event: which device, which of the two scores, when, on which field."""

    device_id: str
    detector: str
    ts: float
    field: str


def _median_h(values: list[float]) -> float | None:
    return round(float(np.median(values)) / _H, 1) if values else None


def peer_report(fleet: Fleet, flags: list[PeerFlag], learn_until: float,
                detected: dict[str, float] | None = None) -> dict[str, Any]:
    """The peer detector's figures, keys ``peer_…`` and ``peer_cohort_…``; with ``detected``
    (device → when a case first caught its fault) the cases' hours after onset beside them."""
    end = fleet.config.end
    days = max(0.0, (end - learn_until) / 86_400.0)
    healthy = [d.device_id for d in fleet.devices if d.truth is None]
    onset = {d.device_id: d.truth.onset for d in fleet.devices if d.truth is not None}
    shared = {d.device_id for d in fleet.devices
              if d.truth is not None and d.truth.fleet_fault}
    out: dict[str, Any] = {}
    if detected is not None:
        for name, devices in (("fleet_fault", shared), ("own_fault", set(onset) - shared)):
            out[f"cases_{name}_median_h_after_onset"] = _median_h(
                [detected[d] - onset[d] for d in devices if d in detected])
    by_id = {d.device_id: d for d in fleet.devices}

    def rollout_step(flag: PeerFlag) -> bool:
        """On the field a firmware update shifts by design, after the device's update."""
        device = by_id[flag.device_id]
        update = device.imperfections.update_at
        return (flag.field == device.product.firmware_shift[0] and update is not None
                and flag.ts >= update)

    for detector in PEER_DETECTORS:
        first: dict[str, float] = {}
        false_flags = steps = 0
        healthy_set = set(healthy)
        for flag in flags:
            if flag.detector != detector or flag.ts < learn_until:
                continue
            if flag.device_id in healthy_set:
                false_flags += 1
                steps += rollout_step(flag)
            elif flag.device_id in onset and flag.ts >= onset[flag.device_id]:
                first.setdefault(flag.device_id, flag.ts)
                first[flag.device_id] = min(first[flag.device_id], flag.ts)
        own = set(onset) - shared
        for name, devices in (("fleet_fault", shared), ("own_fault", own)):
            caught = [first[d] - onset[d] for d in devices if d in first]
            out[f"{detector}_{name}_devices"] = len(devices)
            out[f"{detector}_{name}_devices_flagged"] = len(caught)
            out[f"{detector}_{name}_median_h_after_onset"] = _median_h(caught)
        device_days = len(healthy) * days
        out[f"{detector}_false_flags"] = false_flags
        #: of which the simulated firmware update's own step (``Product.firmware_shift``): a
        #: cohort that did move together, by design, not a fault
        out[f"{detector}_false_flags_rollout_step"] = steps
        out[f"{detector}_false_flags_per_1000_device_days"] = (
            round(1000.0 * false_flags / device_days, 2) if device_days else None)
    return out
