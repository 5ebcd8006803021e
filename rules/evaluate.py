"""Rule evaluation: per (rule, device), is the anomaly score high, and has it stayed high?

States: normal → pending (condition true, waiting out ``for``) → firing; back to normal when the
condition is false. Entering *firing* yields one :class:`Alarm`.

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> from rules.model import Rule
>>> rule = Rule(name="hot", score_at_least=0.8, **{"for": 120})
>>> ev = RuleEvaluator((rule,))
>>> scores = np.array([[0.1], [0.9], [0.9], [0.95], [0.2]])
>>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(5) * 60.0,
...                     np.ones((5, 1)), scores)
>>> [(a.rule.name, a.started_at, a.fired_at) for a in ev.evaluate(batch)]
[('hot', 60.0, 180.0)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from core.events import DetectorEvent, ScoredBatch
from rules.model import Rule

__all__ = ["Alarm", "AlarmState", "RuleEvaluator"]


@dataclass(frozen=True, slots=True)
class Alarm:
    """A rule that started firing for a device, with the evidence behind it."""

    rule: Rule
    tenant: str
    device_id: str
    product: str
    started_at: float
    fired_at: float
    field: str
    peak_score: float
    value: float
    events: tuple[DetectorEvent, ...] = ()


@dataclass(slots=True)
class AlarmState:
    """Where one (rule, device) pair stands."""

    pending_since: float | None = None
    firing: bool = False
    events: list[DetectorEvent] = field(default_factory=list)


class RuleEvaluator:
    """Evaluates every rule over each scored batch; keeps per-(rule, device) state."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.states: dict[tuple[str, str, str], AlarmState] = {}

    def evaluate(self, batch: ScoredBatch) -> list[Alarm]:
        """Alarms that start firing in this batch."""
        alarms: list[Alarm] = []
        for rule in self.rules:
            if rule.product is not None and rule.product != batch.product:
                continue
            cols = [i for i, f in enumerate(batch.fields)
                    if rule.fields is None or f in rule.fields]
            if not cols:
                continue
            scores = np.nan_to_num(batch.scores[:, cols], nan=0.0)
            mask: NDArray[np.bool_] = np.any(scores >= rule.score_at_least, axis=1)
            high = [bool(h) for h in mask.tolist()]
            key = (rule.name, batch.tenant, batch.device_id)
            state = self.states.setdefault(key, AlarmState())
            state.events.extend(e for e in batch.events if batch.fields.index(e.field) in cols)
            del state.events[:-20]  # keep the latest evidence only
            for i in range(batch.n_samples):
                ts = float(batch.t[i])
                if not high[i]:
                    state.pending_since = None
                    state.firing = False
                    continue
                if state.pending_since is None:
                    state.pending_since = ts
                if not state.firing and ts - state.pending_since >= rule.for_s:
                    state.firing = True
                    j = int(np.argmax(scores[i]))
                    alarms.append(Alarm(
                        rule=rule, tenant=batch.tenant, device_id=batch.device_id,
                        product=batch.product, started_at=state.pending_since, fired_at=ts,
                        field=batch.fields[cols[j]], peak_score=float(scores[i, j]),
                        value=float(batch.values[i, cols[j]]), events=tuple(state.events),
                    ))
        return alarms
