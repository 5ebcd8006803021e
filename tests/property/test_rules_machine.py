"""A hypothesis state machine over alarm states and the case lifecycle.

Samples (high or low) arrive for two devices, time passes, the team acknowledges cases, a
silence comes and goes, and the pipeline restarts from its database. Whatever the order:

- no problem ever has two open cases (per device and group);
- a case opens only after the condition held for ``for`` on every sample;
- an alarm a silence held back opens its case after the silence, if it is still firing;
- nothing is said about a silenced device (no opened/reopened notice while it is silenced);
- a case resolves only after recovery: every sample of the last ``resolve_after`` was clear.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.db import CaseRow, NoticeRow, connect
from rules.model import RuleSet, Silence, parse_rules
from rules.pipeline import RulesPipeline

FOR_S, RESOLVE_S, STEP = 120.0, 120.0, 60.0
DEVICES = ("d1", "d2")
RULES: RuleSet = parse_rules(f"""
rules:
  - name: hot
    score_at_least: 0.8
    for: {FOR_S}
    resolve_after: {RESOLVE_S}
    group: heat
cases: {{reopen_within: 3600, escalate_after: 600}}
""")
SILENCE = Silence(name="quiet_d2", kind="silence", devices=("d2",),
                  start=datetime(1970, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC))


class AlarmsAndCases(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = connect("sqlite://")
        self.now = 1_000_000.0
        self.silenced = False
        self.samples: dict[str, list[tuple[float, bool]]] = {d: [] for d in DEVICES}
        self.pipeline = self._pipeline()

    def _pipeline(self) -> RulesPipeline:
        pipeline = RulesPipeline(RULES, CaseBook(self.engine, "terminal", lambda: self.now))
        if self.silenced:
            pipeline.silencer.add(SILENCE)
        return pipeline

    def teardown(self) -> None:
        cases = self.pipeline.casebook.cases()
        event(f"cases: {min(len(cases), 3)}+, resolved: "
              f"{min(sum(c.status == 'resolved' for c in cases), 2)}+, "
              f"reopened: {any(c.reopened for c in cases)}")
        self.engine.dispose()

    def _opening_notices(self, device: str) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(NoticeRow).where(
                NoticeRow.device_id == device,
                NoticeRow.kind.in_(("opened", "reopened")))) or 0

    @rule(device=st.sampled_from(DEVICES), level=st.booleans(), run=st.integers(1, 6),
          blip=st.booleans())
    def samples_arrive(self, device: str, level: bool, run: int, blip: bool) -> None:
        # runs of one level (faults persist), sometimes with one opposite sample at the end
        high = [level] * run + ([not level] if blip else [])
        before = self._opening_notices(device)
        t = self.now + STEP * np.arange(1, len(high) + 1, dtype=np.float64)
        scores = np.array([[0.95 if h else 0.1] for h in high])
        batch = ScoredBatch("acme", device, "heat_pump", ("a",), t, np.ones_like(scores), scores)
        self.now = float(t[-1])
        self.pipeline.handle(batch)
        self.samples[device].extend(zip(t.tolist(), high, strict=True))
        if self.silenced and device == "d2":
            assert self._opening_notices(device) == before, "a silenced device was notified"

    @rule(minutes=st.integers(1, 10))
    def time_passes(self, minutes: int) -> None:
        self.now += minutes * 60.0
        self.pipeline.tick(self.now)

    @rule()
    def toggle_silence(self) -> None:
        self.silenced = not self.silenced
        if self.silenced:
            self.pipeline.silencer.add(SILENCE)
            return
        self.pipeline.silencer.windows.remove(SILENCE)
        self.pipeline.tick(self.now)
        # what the silence held back and still fires has its case now (restarts included)
        if self.pipeline.evaluator.status("hot", "acme", "d2") == "firing":
            assert any(c.device_id == "d2" and c.status != "resolved"
                       for c in self.pipeline.casebook.cases()), "held alarm never opened"

    @rule()
    def restart(self) -> None:
        self.pipeline = self._pipeline()

    @precondition(lambda self: any(c.status == "open" for c in self.pipeline.casebook.cases()))
    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        open_ids = [c.id for c in self.pipeline.casebook.cases() if c.status == "open"]
        assert self.pipeline.casebook.acknowledge(data.draw(st.sampled_from(open_ids)))

    @invariant()
    def at_most_one_open_case_per_problem(self) -> None:
        with Session(self.engine) as session:
            worst = session.execute(
                select(CaseRow.group_key, func.count()).where(CaseRow.status != "resolved")
                .group_by(CaseRow.group_key)).all()
        assert all(n == 1 for _, n in worst), worst

    @invariant()
    def cases_open_only_after_for_and_resolve_only_after_recovery(self) -> None:
        for case in self.pipeline.casebook.cases():
            history = self.samples[case.device_id]
            # the condition held on every sample of its first `for` (a case a silence held
            # back opens later, when the silence ends)
            held = [h for t, h in history
                    if case.fault_started_at <= t <= case.fault_started_at + FOR_S]
            assert case.opened_at - case.fault_started_at >= FOR_S and all(held), case.id
            if case.status == "resolved":
                assert case.resolved_at is not None
                window = [h for t, h in history
                          if case.resolved_at - RESOLVE_S <= t <= case.resolved_at]
                assert window and not any(window), f"case {case.id} resolved without recovery"


TestAlarmsAndCases = AlarmsAndCases.TestCase
TestAlarmsAndCases.settings = settings(max_examples=40, stateful_step_count=50, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
