"""Simulated support agents (issue 20): they know the ground truth and resolve every false case
as a false alarm as it happens, so the rules learn from them as from a real team."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from firmware_sim.fleet import Fleet
from rules import case_actions
from rules.db import CaseRow
from rules.errors import CaseStateError
from rules.feedback import FeedbackPolicy
from rules.resolution import Resolution

__all__ = ["SimAgent"]


class SimAgent:
    """Every new case on a device without a fault (or before its onset) is resolved at once as
    ``false_alarm`` through :func:`rules.case_actions.resolve`, as the console does (a case
    that already resolved itself is given its outcome all the same); the feedback it causes
    reaches the rules at their next tick, as in a running service. The reason is what an
    agent who looked would find: ``installation`` on a device with an installation quirk
    (``firmware_sim.quirks``), ``unknown`` otherwise."""

    def __init__(self, engine: Engine, fleet: Fleet, policy: FeedbackPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self.onsets = {d.device_id: d.truth.onset for d in fleet.devices if d.truth is not None}
        self.quirky = {d.device_id for d in fleet.devices if d.quirk is not None}
        self.seen = 0

    def mark(self, new_cases: Sequence[CaseRow], now: float) -> None:
        """Judge the cases opened (or reopened) since the last call."""
        for case in new_cases[self.seen:]:
            onset = self.onsets.get(case.device_id)
            if onset is not None and case.opened_at >= onset:
                continue  # a real fault: nothing to loosen
            reason = "installation" if case.device_id in self.quirky else "unknown"
            try:
                case_actions.resolve(
                    self.engine, case.tenant, case.id, by="sim agent", comment="", now=now,
                    feedback=self.policy, resolution=Resolution("false_alarm", reason=reason))
            except CaseStateError:  # resolved itself and judged already
                continue
        self.seen = len(new_cases)
