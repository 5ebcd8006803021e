"""Simulated support agents (issue 20): they know the ground truth and resolve every false case
as a false alarm as it happens, so the rules learn from them as from a real team."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from firmware_sim.fleet import Fleet
from rules import case_actions
from rules.db import CaseRow
from rules.errors import CaseStateError
from rules.feedback import FeedbackPolicy, learn_false_alarm
from rules.resolution import Resolution

__all__ = ["SimAgent"]


class SimAgent:
    """Every new case on a device without a fault (or before its onset) is resolved at once as
    ``false_alarm`` through :func:`rules.case_actions.resolve`, as the console does; the
    feedback it causes reaches the rules at their next tick, as in a running service."""

    def __init__(self, engine: Engine, fleet: Fleet, policy: FeedbackPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self.onsets = {d.device_id: d.truth.onset for d in fleet.devices if d.truth is not None}
        self.seen = 0

    def mark(self, new_cases: Sequence[CaseRow], now: float) -> None:
        """Judge the cases opened (or reopened) since the last call."""
        for case in new_cases[self.seen:]:
            onset = self.onsets.get(case.device_id)
            if onset is not None and case.opened_at >= onset:
                continue  # a real fault: nothing to loosen
            try:
                case_actions.resolve(self.engine, case.tenant, case.id, by="sim agent",
                                     comment="", now=now, feedback=self.policy,
                                     resolution=Resolution("false_alarm", reason="unknown"))
            except CaseStateError:  # resolved itself already: the agent's verdict still counts
                with Session(self.engine) as session:
                    learn_false_alarm(session, case, "sim agent", now, self.policy)
                    session.commit()
        self.seen = len(new_cases)
