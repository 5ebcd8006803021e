"""Backtest a rules change on labelled history: replay stored telemetry through the current and
the proposed rules and compare the cases each would have opened, against the agents' labels.

Each configuration runs the real :class:`rules.pipeline.RulesPipeline` over an in-memory case
database (nothing is written to the real one), fed with the stored values and anomaly scores of
every device the case database knows (its alarm states, devices and cases), in time order.

Two cases (of the two runs) are *the same case* when they are on one device and their windows
(anomaly onset → resolution, or the end of the replay) overlap; a case matches a label when they
are on one device and the case's window overlaps the label's evidence window. Per configuration:

- ``precision``: of the cases that match a label, the share whose label is ``confirmed``
  (unlabelled cases do not count either way; None without any);
- ``recall``: of the ``confirmed`` labels in the period, the share some case matches;
- ``lead_time_median_s``: for matched confirmed labels, how long before the end of the label's
  window (the agent confirming the fault) the earliest matching case opened.

Changes: ``open`` (a case only the proposed rules open), ``close`` (only the current ones),
``move`` (both, opened at different times: ``shift_s`` = proposed − current).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.events import ScoredBatch
from core.store.base import HistoryStore
from rules.cases import CaseBook
from rules.db import AlarmStateRow, CaseRow, DeviceRow, LabelRow, connect
from rules.model import RuleSet
from rules.pipeline import RulesPipeline

__all__ = ["BacktestReport", "ReplayedCase", "Scores", "backtest", "changes", "devices_of",
           "newest_sample", "replay", "score"]

#: samples handed to the rules pipeline at once (a service's batches are about this size)
_CHUNK = 360


@dataclass(frozen=True, slots=True)
class ReplayedCase:
    """A case one configuration would have opened."""

    tenant: str
    device_id: str
    rules: str
    opened_at: float
    fault_started_at: float
    #: when it would have resolved (None: still open at the end of the replay)
    resolved_at: float | None

    def window(self, end: float) -> tuple[float, float]:
        """Anomaly onset → resolution (or ``end``)."""
        return self.fault_started_at, self.resolved_at if self.resolved_at is not None else end


@dataclass(frozen=True, slots=True)
class Scores:
    """One configuration against the labels."""

    cases: int
    labelled_cases: int
    confirmed_cases: int
    precision: float | None
    confirmed_labels: int
    confirmed_found: int
    recall: float | None
    lead_time_median_s: float | None


@dataclass(slots=True)
class BacktestReport:
    """Both configurations side by side, and what would change."""

    start: float
    end: float
    devices: int
    labels: int
    current: Scores
    proposed: Scores
    changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"start": self.start, "end": self.end, "devices": self.devices,
                "labels": self.labels, "current": asdict(self.current),
                "proposed": asdict(self.proposed), "changes": self.changes}


def devices_of(engine: Engine, store: HistoryStore) -> list[tuple[str, str, str]]:
    """(tenant, device, product) of every device the case database knows, sorted."""
    found: dict[tuple[str, str], str] = {}
    with Session(engine) as session:
        for tenant, device_id, product in session.execute(
                select(AlarmStateRow.tenant, AlarmStateRow.device_id, AlarmStateRow.product)):
            found.setdefault((tenant, device_id), product)
        for tenant, device_id, product in session.execute(
                select(DeviceRow.tenant, DeviceRow.device_id, DeviceRow.product)):
            if product:
                found.setdefault((tenant, device_id), product)
        for tenant, device_id, product in session.execute(
                select(CaseRow.tenant, CaseRow.device_id, CaseRow.product)):
            found.setdefault((tenant, device_id), product)
    out = []
    for (tenant, device_id), product in sorted(found.items()):
        stored = store.product_of(tenant, device_id)
        if stored is not None:
            out.append((tenant, device_id, product or stored))
    return out


def newest_sample(engine: Engine) -> float | None:
    """The newest sample the rules saw (alarm states' ``last_seen``): where a replay ends by
    default, so a demo's simulated month replays as well as a live fleet's."""
    with Session(engine) as session:
        newest = session.scalar(select(func.max(AlarmStateRow.last_seen)))
    return float(newest) if newest is not None else None


def _batches(store: HistoryStore, devices: Sequence[tuple[str, str, str]], start: float,
             end: float) -> list[ScoredBatch]:
    """Every device's stored history as batches, in time order across devices."""
    batches: list[ScoredBatch] = []
    for tenant, device_id, product in devices:
        frame = store.read(tenant, device_id, start, end)
        events = store.read_events(tenant, device_id, start, end)
        for i in range(0, len(frame.t), _CHUNK):
            t = frame.t[i:i + _CHUNK]
            lo, hi = float(t[0]), float(t[-1])
            batches.append(ScoredBatch(
                tenant, device_id, product, frame.fields, t, frame.values[i:i + _CHUNK],
                frame.scores[i:i + _CHUNK],
                tuple(e for e in events if lo <= e.ts <= hi)))
    batches.sort(key=lambda b: (float(b.t[0]), b.tenant, b.device_id))
    return batches


def replay(rules: RuleSet, batches: Iterable[ScoredBatch], end: float) -> list[ReplayedCase]:
    """The cases ``rules`` would have opened over ``batches`` (an in-memory case database)."""
    engine = connect("sqlite://")
    clock = [0.0]
    try:
        pipeline = RulesPipeline(rules, CaseBook(engine, clock=lambda: clock[0]),
                                 persist_states=False)
        for batch in batches:
            clock[0] = float(batch.t[-1])
            pipeline.handle(batch)
            pipeline.tick(clock[0])
        clock[0] = end
        pipeline.tick(end)
        pipeline.close()
        return [ReplayedCase(c.tenant, c.device_id, c.rules or c.rule, c.opened_at,
                             c.fault_started_at, c.resolved_at)
                for c in pipeline.casebook.cases()]
    finally:
        engine.dispose()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def score(cases: Sequence[ReplayedCase], labels: Sequence[LabelRow], end: float) -> Scores:
    """One configuration's precision, recall and lead time against ``labels``."""
    def matching(case: ReplayedCase) -> list[LabelRow]:
        return [label for label in labels if label.tenant == case.tenant
                and label.device_id == case.device_id
                and _overlap(case.window(end), (label.window_start, label.window_end))]

    labelled = confirmed = 0
    for case in cases:
        found = matching(case)
        labelled += bool(found)
        confirmed += any(label.outcome == "confirmed" for label in found)
    truths = [label for label in labels if label.outcome == "confirmed"]
    leads: list[float] = []
    for label in truths:
        opened = [c.opened_at for c in cases if c.tenant == label.tenant
                  and c.device_id == label.device_id
                  and _overlap(c.window(end), (label.window_start, label.window_end))]
        if opened:
            leads.append(label.window_end - min(opened))
    return Scores(
        cases=len(cases), labelled_cases=labelled, confirmed_cases=confirmed,
        precision=confirmed / labelled if labelled else None,
        confirmed_labels=len(truths), confirmed_found=len(leads),
        recall=len(leads) / len(truths) if truths else None,
        lead_time_median_s=statistics.median(leads) if leads else None)


def changes(current: Sequence[ReplayedCase], proposed: Sequence[ReplayedCase],
            end: float) -> dict[str, list[dict[str, Any]]]:
    """Cases that would open, close or move with the proposed rules."""
    out: dict[str, list[dict[str, Any]]] = {"open": [], "close": [], "move": []}
    paired: set[int] = set()
    for case in current:
        twin = next((i for i, p in enumerate(proposed) if i not in paired
                     and p.tenant == case.tenant and p.device_id == case.device_id
                     and _overlap(p.window(end), case.window(end))), None)
        if twin is None:
            out["close"].append(_row(case))
            continue
        paired.add(twin)
        if proposed[twin].opened_at != case.opened_at:
            out["move"].append({**_row(proposed[twin]),
                                "shift_s": proposed[twin].opened_at - case.opened_at})
    out["open"] = [_row(p) for i, p in enumerate(proposed) if i not in paired]
    return out


def _row(case: ReplayedCase) -> dict[str, Any]:
    return {"tenant": case.tenant, "device_id": case.device_id, "rules": case.rules,
            "opened_at": case.opened_at}


def backtest(current: RuleSet, proposed: RuleSet, store: HistoryStore, engine: Engine,
             start: float, end: float) -> BacktestReport:
    """Replay [start, end) of the stored telemetry through both rule sets; score both."""
    devices = devices_of(engine, store)
    batches = _batches(store, devices, start, end)
    with Session(engine, expire_on_commit=False) as session:
        labels = list(session.scalars(select(LabelRow).where(
            LabelRow.window_end >= start, LabelRow.window_start < end)))
    now_cases = replay(current, batches, end)
    new_cases = replay(proposed, batches, end)
    return BacktestReport(start, end, len(devices), len(labels), score(now_cases, labels, end),
                          score(new_cases, labels, end), changes(now_cases, new_cases, end))
