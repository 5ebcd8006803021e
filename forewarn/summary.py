"""Matching what forewarn did against the simulator's ground truth: the demo's summary.

>>> from firmware_sim.truth import FaultTruth
>>> truth = [FaultTruth("hp-1", "heat_pump", "refrigerant_leak", 100.0, 500.0, 900.0)]
>>> cases = [OpenedCase(1, "hp-1", "r", opened_at=400.0), OpenedCase(2, "hp-2", "r", 50.0)]
>>> s = summarise(truth, cases, devices=2, published=10, ingested=10, duplicates=0,
...               notices_sent=3, dead_letters=0)
>>> s.faults_notified_before_call, s.false_cases, s.lead_times_s
(1, 1, [500.0])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from firmware_sim.truth import FaultTruth

__all__ = ["CaseOutcome", "DemoSummary", "OpenedCase", "print_summary", "summarise"]


@dataclass(frozen=True, slots=True)
class OpenedCase:
    """The facts of a case the evaluation needs."""

    case_id: int
    device_id: str
    rule: str
    opened_at: float


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """A case judged against the ground truth."""

    case_id: int
    device_id: str
    rule: str
    opened_at: float
    fault_kind: str | None
    lead_time_s: float | None  # before the customer's call; None: no fault or no call


@dataclass(slots=True)
class DemoSummary:
    """What happened in one run, in the keys the README documents."""

    devices: int
    samples_published: int
    samples_ingested: int
    samples_lost: int
    duplicates_dropped: int
    dead_letters: int
    faults_injected: int
    faults_with_call: int
    cases_opened: int
    notifications_sent: int
    faults_notified_before_call: int
    false_cases: int
    lead_times_s: list[float]
    cases: list[CaseOutcome] = field(default_factory=list)
    wall_time_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def summarise(
    truth: list[FaultTruth],
    cases: list[OpenedCase],
    *,
    devices: int,
    published: int,
    ingested: int,
    duplicates: int,
    notices_sent: int,
    dead_letters: int,
) -> DemoSummary:
    """Judge every case: it matches a fault when its device has one that began before it opened."""
    faults = {t.device_id: t for t in truth}
    outcomes: list[CaseOutcome] = []
    notified_before_call: set[str] = set()
    for case in cases:
        fault = faults.get(case.device_id)
        matched = fault is not None and case.opened_at >= fault.onset
        lead = None
        if matched and fault is not None and fault.call is not None:
            lead = fault.call - case.opened_at
            if lead > 0:
                notified_before_call.add(case.device_id)
        outcomes.append(CaseOutcome(case.case_id, case.device_id, case.rule, case.opened_at,
                                    fault.kind if matched and fault else None, lead))
    return DemoSummary(
        devices=devices,
        samples_published=published,
        samples_ingested=ingested,
        samples_lost=published - ingested,
        duplicates_dropped=duplicates,
        dead_letters=dead_letters,
        faults_injected=len(truth),
        faults_with_call=sum(1 for t in truth if t.call is not None),
        cases_opened=len(cases),
        notifications_sent=notices_sent,
        faults_notified_before_call=len(notified_before_call),
        false_cases=sum(1 for o in outcomes if o.fault_kind is None),
        lead_times_s=[o.lead_time_s for o in outcomes if o.lead_time_s is not None],
        cases=outcomes,
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def print_summary(summary: DemoSummary, console: Console) -> None:
    """The summary a person reads at a glance."""
    table = Table(title="forewarn demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, Any]] = [
        ("devices", summary.devices),
        ("samples published", summary.samples_published),
        ("samples ingested", summary.samples_ingested),
        ("samples lost", summary.samples_lost),
        ("duplicate batches dropped", summary.duplicates_dropped),
        ("messages dead-lettered", summary.dead_letters),
        ("faults injected", summary.faults_injected),
        ("cases opened", summary.cases_opened),
        ("notifications delivered", summary.notifications_sent),
        ("faults notified before the customer's call",
         f"{summary.faults_notified_before_call} of {summary.faults_with_call} that call"),
        ("false cases", summary.false_cases),
        ("wall time", f"{summary.wall_time_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if summary.cases:
        rules = sorted({c.rule for c in summary.cases})
        cases = Table(title="cases", title_justify="left",
                      caption=f"rule{'s' if len(rules) > 1 else ''}: {', '.join(rules)}",
                      caption_justify="left")
        for col in ("case", "device", "opened (simulated)", "fault behind it", "lead before call"):
            cases.add_column(col, overflow="fold")
        for c in summary.cases:
            opened = datetime.fromtimestamp(c.opened_at, tz=UTC).strftime("%m-%d %H:%M")
            lead = _hours(c.lead_time_s) if c.lead_time_s is not None else "-"
            cases.add_row(f"FW-{c.case_id}", c.device_id, opened,
                          c.fault_kind or "none (false case)", lead)
        console.print(cases)
