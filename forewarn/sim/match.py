"""Matching the cases forewarn opened to the ground truth of a simulated fleet.

A case belongs to a fault when it is on the faulty device and was noticed no earlier than
``grace_s`` before the fault's onset; every other case is a false case. A fault is *notified
before the call* when a case with a customer notice came before the call.

>>> from firmware_sim.truth import FaultTruth
>>> leak = FaultTruth("hp-1", "heat_pump", "refrigerant_leak", onset=0.0, visible=3600.0,
...                   call=7200.0, course="slow")
>>> case = SimCase("hp-1", "heat_pump", "r", "warning", customer_notice=True, noticed_at=1800.0)
>>> result = match_cases([leak], [case], horizon_end=10_000.0)
>>> result.faults[0].outcome, result.faults[0].lead_time_s, result.false_cases
('before_call', 5400.0, [])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from firmware_sim.truth import FaultTruth

__all__ = ["FaultMatch", "MatchResult", "Outcome", "SimCase", "match_cases"]

#: the customer heard nothing before calling (``after_call``); no case at all (``missed``); the
#: customer never calls (``no_call``, e.g. a fault they never see); the call is after the run
Outcome = Literal["before_call", "after_call", "missed", "no_call", "call_after_horizon"]

#: a no-data case noticed up to this long after a simulated outage ended is explained by it
_OUTAGE_SLACK_S = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class SimCase:
    """A case the rules opened, as the evaluation sees it.

    ``noticed_at`` is true time: when the server had the sample that opened the case (and so
    when its notices went out); ``opened_at`` is the sample's time on the device's clock.
    """

    device_id: str
    product: str
    rule: str
    severity: str
    customer_notice: bool
    noticed_at: float
    opened_at: float = 0.0
    field: str = ""
    #: when the customer notice went out (after quiet hours); defaults to ``noticed_at``
    notified_at: float | None = None
    #: a resolved case that opened again (the team hears, the customer is not told again)
    reopened: bool = False
    #: opened by a no-data rule (the device went silent), not by its telemetry
    no_data: bool = False

    @property
    def customer_heard_at(self) -> float | None:
        """When the customer heard from us through this case (None: not through this one)."""
        if not self.customer_notice:
            return None
        return self.notified_at if self.notified_at is not None else self.noticed_at


@dataclass(slots=True)
class FaultMatch:
    """One fault of the ground truth and what forewarn did about it."""

    truth: FaultTruth
    outcome: Outcome
    #: the first case that belongs to the fault, and the first with a customer notice
    detected_at: float | None = None
    notified_at: float | None = None
    #: seconds between the customer notice and the call (positive: we were first)
    lead_time_s: float | None = None
    cases: list[SimCase] = field(default_factory=list)


@dataclass(slots=True)
class MatchResult:
    """Every fault's match, and the cases no fault explains."""

    faults: list[FaultMatch]
    false_cases: list[SimCase]
    #: customer notices sent for faults the customer would never have noticed
    notices_for_invisible: int = 0
    #: no-data cases explained by a simulated outage (power or network)
    offline_cases: list[SimCase] = field(default_factory=list)


def match_cases(truths: Sequence[FaultTruth], cases: Sequence[SimCase], horizon_end: float,
                grace_s: float = 0.0,
                outages: dict[str, NDArray[np.float64]] | None = None) -> MatchResult:
    """Match cases to the faults of the ground truth (see the module docstring).

    A call after ``horizon_end`` has not happened yet: such a fault counts as
    ``call_after_horizon``, neither won nor lost. A no-data case on a device that the simulation
    took offline (``outages``: rows of start, end per device) is an offline case, not a false
    one, whether or not the device also has a fault.
    """
    offline: list[SimCase] = []
    if outages is not None:
        kept = []
        for case in cases:
            spans = outages.get(case.device_id)
            if case.no_data and spans is not None and bool(np.any(
                    (spans[:, 0] <= case.noticed_at)
                    & (case.noticed_at <= spans[:, 1] + _OUTAGE_SLACK_S))):
                offline.append(case)
            else:
                kept.append(case)
        cases = kept
    by_device: dict[str, list[SimCase]] = {}
    for case in sorted(cases, key=lambda c: c.noticed_at):
        by_device.setdefault(case.device_id, []).append(case)
    faults_of: dict[str, list[FaultTruth]] = {}
    for truth in truths:
        faults_of.setdefault(truth.device_id, []).append(truth)
    matched: set[int] = set()
    faults: list[FaultMatch] = []
    invisible_notices = 0
    for truth in truths:
        mine = [c for c in by_device.get(truth.device_id, [])
                if c.noticed_at >= truth.onset - grace_s]
        matched.update(id(c) for c in mine)
        detected = mine[0].noticed_at if mine else None
        heard = [c.customer_heard_at for c in mine if c.customer_heard_at is not None]
        notified = min(heard) if heard else None
        if truth.visible is None:
            invisible_notices += sum(c.customer_notice for c in mine)
        lead: float | None = None
        outcome: Outcome
        if truth.call is None:
            outcome = "no_call"
        elif notified is not None and notified < truth.call:
            outcome, lead = "before_call", truth.call - notified
        elif truth.call > horizon_end:
            outcome = "call_after_horizon"
        elif notified is not None or detected is not None:
            outcome = "after_call"
        else:
            outcome = "missed"
        faults.append(FaultMatch(truth, outcome, detected, notified, lead, mine))
    false_cases = [c for c in cases if id(c) not in matched]
    return MatchResult(faults, false_cases, invisible_notices, offline)
