"""``forewarn incidents`` and ``/api/v1/incidents``: fleet incidents (``rules.incidents``) as
people read them, and the decisions people take on them.

The views are pydantic models, so the command's ``--json`` and the API answer the same
document; the decisions go through :class:`rules.incidents.IncidentBook`, as the running
service's own linking does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine

from forewarn.text import plural
from rules.incidents import IncidentBook, incident_ref
from rules.messages import case_ref
from rules.registry import CustomerRegistry

__all__ = [
    "IncidentCaseView",
    "IncidentDetailView",
    "IncidentFlagView",
    "IncidentView",
    "close_incident",
    "decide_incident",
    "incident_detail",
    "incident_list",
    "render_detail",
    "render_list",
]


class IncidentView(BaseModel):
    """One fleet incident, as listed."""

    id: int
    ref: str
    tenant: str
    product: str
    cohort: str
    rule: str
    status: str
    opened_at: float
    #: when it became ``cohort``'s incident: ``opened_at``, or later when it opened as a
    #: model's and a release's, a batch's or a region's cluster absorbed it
    cohort_at: float
    last_joined_at: float
    closed_at: float | None
    closed_by: str
    cases: int
    devices: int
    #: message or hold
    customers: str
    #: a person's decision on held customer notices (None: none yet)
    decision: str | None
    decided_by: str | None
    summary: str


class IncidentCaseView(BaseModel):
    """A case an incident links."""

    id: int
    ref: str
    device_id: str
    rule: str
    status: str
    opened_at: float
    customer_notified: bool


class IncidentFlagView(BaseModel):
    """A device in an incident by a flag only: a detector found it unlike its peers, and none
    of its cases is linked (it may have none yet)."""

    device_id: str
    #: the detector that flagged it (``peer``) and the field
    detector: str
    field: str
    at: float


class IncidentDetailView(BaseModel):
    """An incident, every case it links and the flags of its flag-only devices."""

    incident: IncidentView
    cases: list[IncidentCaseView]
    flagged: list[IncidentFlagView]


def incident_list(engine: Engine, status: str | None = None,
                  tenant: str | None = None) -> list[IncidentView]:
    """Incidents, newest first (``status``: open or closed only; ``tenant``: one tenant's)."""
    return [_view(row) for row in IncidentBook.list_incidents(engine, status, tenant)]


def incident_detail(engine: Engine, incident_id: int,
                    tenant: str | None = None) -> IncidentDetailView | None:
    """One incident with its cases (None: no such incident under ``tenant``)."""
    detail = IncidentBook.detail(engine, incident_id, tenant)
    if detail is None:
        return None
    return IncidentDetailView(incident=_view(detail.incident), cases=[
        IncidentCaseView(id=c.id, ref=case_ref(c.id), device_id=c.device_id, rule=c.rule,
                         status=c.status, opened_at=c.opened_at,
                         customer_notified=c.customer_notified)
        for c in detail.cases], flagged=[
        IncidentFlagView(device_id=f.device_id, detector=f.detector, field=f.field, at=f.at)
        for f in detail.flags])


def decide_incident(engine: Engine, registry: CustomerRegistry, incident_id: int,
                    decision: Literal["message", "quiet"], by: str, now: float) -> int:
    """A person's decision on a held incident; how many customer messages were queued."""
    return IncidentBook(registry=registry).decide(engine, incident_id, decision, by, now)


def close_incident(engine: Engine, incident_id: int, by: str, now: float) -> None:
    """Close an open incident."""
    IncidentBook().close(engine, incident_id, by, now)


def _view(row: object) -> IncidentView:
    from rules.db import IncidentRow

    assert isinstance(row, IncidentRow)
    return IncidentView(
        id=row.id, ref=incident_ref(row.id), tenant=row.tenant, product=row.product,
        cohort=row.cohort, rule=row.rule, status=row.status, opened_at=row.opened_at,
        cohort_at=row.opened_at if row.cohort_at is None else row.cohort_at,
        last_joined_at=row.last_joined_at, closed_at=row.closed_at, closed_by=row.closed_by,
        cases=row.cases, devices=row.devices, customers=row.customer_policy,
        decision=row.decision, decided_by=row.decided_by, summary=row.summary)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _customers(view: IncidentView) -> str:
    if view.customers == "hold" and view.decision is None:
        return "held (undecided)"
    if view.decision is not None:
        return f"{view.decision} (decided by {view.decided_by})"
    return "one message each"


def render_list(views: list[IncidentView]) -> list[str]:
    """The lines ``forewarn incidents list`` prints."""
    if not views:
        return ["no incidents"]
    lines = [f"{'ref':<8} {'status':<7} {'opened (UTC)':<16} {'devices':>7}  cohort / rule"]
    for v in views:
        lines.append(f"{v.ref:<8} {v.status:<7} {_when(v.opened_at):<16} {v.devices:>7}  "
                     f"{v.cohort} / {v.rule}  customers: {_customers(v)}")
    return lines


def render_detail(detail: IncidentDetailView) -> list[str]:
    """The lines ``forewarn incidents show`` prints."""
    v = detail.incident
    lines = [f"{v.ref} {v.status}: {v.cohort}, rule {v.rule} ({v.tenant})",
             f"  {v.summary}",
             f"  opened {_when(v.opened_at)} UTC, last joined {_when(v.last_joined_at)}"
             + (f", closed {_when(v.closed_at)} by {v.closed_by}" if v.closed_at else ""),
             *([f"  {v.cohort}'s incident since {_when(v.cohort_at)} UTC (it opened as "
                "another cohort's)"] if v.cohort_at > v.opened_at else []),
             f"  customers: {_customers(v)}",
             f"  {v.cases} cases on {v.devices} devices:"]
    lines += [f"    {c.ref:<8} {c.device_id:<16} {c.rule:<32} {c.status:<12} "
              f"{'customer told' if c.customer_notified else 'customer not told'}"
              for c in detail.cases]
    if detail.flagged:
        devices = {f.device_id for f in detail.flagged}
        lines.append(f"  {plural(len(devices), 'device')} flagged unlike peers, "
                     "no case in the incident:")
        lines += [f"    {f.device_id:<16} {f.detector:<8} {f.field or '-':<24} "
                  f"{_when(f.at)} UTC" for f in detail.flagged]
    return lines
