"""How proactive support was, from real tickets: did a case open before the customer called?

Over the tickets opened in a window (``since_s`` up to ``until``):

* a ticket about a device that had a case opened **before** it counts as *forewarned*; its lead
  time is ticket time − case opening (the linked case, else the device's newest case opened
  within ``lookback_s`` before the ticket);
* a ticket with no such case is *missed*; a ticket naming no device cannot be judged;
* a case opened in the window with no ticket for it (linked, or about its device within
  ``lookback_s`` after it opened) was *handled before the call*;
* customers' answers on the status pages, by kind.

>>> from rules.db import CaseRow, TicketRow, connect
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s:
...     s.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump", rule="leak",
...                   severity="warning", status="open", open_key="k", fault_started_at=0,
...                   opened_at=1000, field="t", peak_score=0.9, summary="", evidence_json="{}"))
...     s.add(TicketRow(customer_id="kim", device_id="hp-1", opened_at=1000 + 7200))
...     s.add(TicketRow(customer_id="lee", device_id="hp-2", opened_at=5000))
...     s.commit()
>>> report = proactivity(engine, since_s=86400.0, until=10_000.0)
>>> report["forewarned"], report["missed"], report["lead_time_s"]["median"]
(1, 1, 7200.0)
>>> engine.dispose()
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from rules.db import CaseRow, CustomerAnswerRow, TicketRow

__all__ = ["LEAD_BUCKETS", "proactivity"]

#: lead-time buckets (label, upper bound in seconds)
LEAD_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1h", 3600.0), ("1-6h", 6 * 3600.0), ("6-24h", 86400.0), ("1-3d", 3 * 86400.0),
    ("3-7d", 7 * 86400.0), (">7d", float("inf")))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def proactivity(engine: Engine, since_s: float, until: float,
                lookback_s: float = 14 * 86400.0, tenant: str | None = None) -> dict[str, Any]:
    """The proactivity figures of the window ``[until - since_s, until]`` (JSON-ready);
    ``tenant``: only that tenant's tickets, cases and answers (the console's view)."""
    start = until - since_s
    mine_t = [TicketRow.tenant == tenant] if tenant is not None else []
    mine_c = [CaseRow.tenant == tenant] if tenant is not None else []
    with Session(engine) as session:
        tickets = session.scalars(select(TicketRow).where(
            TicketRow.opened_at >= start, TicketRow.opened_at <= until, *mine_t)).all()
        cases = session.scalars(select(CaseRow).where(
            CaseRow.opened_at >= start - lookback_s, CaseRow.opened_at <= until,
            *mine_c)).all()
        all_tickets = session.scalars(select(TicketRow).where(
            TicketRow.opened_at >= start - lookback_s,
            TicketRow.opened_at <= until + lookback_s, *mine_t)).all()
        answers: dict[str, int] = {str(kind): int(n) for kind, n in session.execute(
            select(CustomerAnswerRow.kind, func.count())
            .join(CaseRow, CaseRow.id == CustomerAnswerRow.case_id).where(
                CustomerAnswerRow.ts >= start, CustomerAnswerRow.ts <= until, *mine_c)
            .group_by(CustomerAnswerRow.kind))}
    by_id = {c.id: c for c in cases}
    by_device: dict[tuple[str, str], list[CaseRow]] = {}
    for case in cases:
        by_device.setdefault((case.tenant, case.device_id), []).append(case)
    leads: list[float] = []
    missed: list[dict[str, Any]] = []
    unjudged = 0
    told_first = 0
    for ticket in tickets:
        prior = _prior_case(ticket, by_id, by_device, lookback_s)
        if prior is None and not ticket.device_id and ticket.case_id is None:
            unjudged += 1  # no device, no case quoted: nothing to judge it by
            continue
        if prior is None:  # a device (or a quoted case) with no case before the ticket
            missed.append({"ticket": ticket.external_id or ticket.id,
                           "device_id": ticket.device_id, "opened_at": ticket.opened_at})
            continue
        leads.append(ticket.opened_at - prior.opened_at)
        told_first += bool(prior.customer_notified)
    ticketed = {t.case_id for t in all_tickets if t.case_id is not None}
    devices_called = [(t.tenant, t.device_id, t.opened_at, t.closed_at)
                      for t in all_tickets if t.device_id]
    in_window = [c for c in cases if c.opened_at >= start]
    # a ticket about the device opened up to lookback_s after the case, or still open when
    # the case opened, means the customer called
    without = [c for c in in_window if c.id not in ticketed and not any(
        device == c.device_id and tenant in ("", c.tenant)
        and (c.opened_at <= opened <= c.opened_at + lookback_s
             or (opened <= c.opened_at and (closed is None or closed >= c.opened_at)))
        for tenant, device, opened, closed in devices_called)]
    buckets = dict.fromkeys((label for label, _ in LEAD_BUCKETS), 0)
    for lead in leads:
        label = next(name for name, bound in LEAD_BUCKETS if lead < bound)
        buckets[label] += 1
    judged = len(leads) + len(missed)
    return {
        "from": start, "until": until, "since_s": since_s, "lookback_s": lookback_s,
        "tickets": len(tickets),
        "forewarned": len(leads),
        "forewarned_customer_told": told_first,
        "missed": len(missed),
        "tickets_without_device": unjudged,
        "forewarned_share": (len(leads) / judged) if judged else None,
        "lead_time_s": {
            "median": statistics.median(leads) if leads else None,
            "p25": _quantile(leads, 0.25) if leads else None,
            "p75": _quantile(leads, 0.75) if leads else None,
            "min": min(leads) if leads else None,
            "max": max(leads) if leads else None,
        },
        "lead_time_distribution": buckets,
        "cases": len(in_window),
        "cases_without_ticket": len(without),
        "answers": {kind: int(answers.get(kind, 0))
                    for kind in ("noted", "visit", "fine", "call")},
        "missed_tickets": missed[:50],
    }


def _prior_case(ticket: TicketRow, by_id: dict[int, CaseRow],
                by_device: dict[tuple[str, str], list[CaseRow]],
                lookback_s: float) -> CaseRow | None:
    """The case opened before the ticket about its device, if any."""
    linked = by_id.get(ticket.case_id) if ticket.case_id is not None else None
    if linked is not None and linked.opened_at <= ticket.opened_at:
        return linked
    candidates = [c for (tenant, device), found in by_device.items()
                  if device == ticket.device_id and (not ticket.tenant or tenant == ticket.tenant)
                  for c in found
                  if ticket.opened_at - lookback_s <= c.opened_at <= ticket.opened_at]
    return max(candidates, key=lambda c: c.opened_at) if candidates else None
