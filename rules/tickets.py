"""Tickets that come in from a helpdesk (``POST /api/v1/helpdesk/events``), tied to cases.

* a ticket **created** about a device with an open case is attached to that case (a timeline
  line); if the case's customer notice has not gone out yet, it never does: the customer
  already talks to us;
* a ticket created while no case is open stays open in ``tickets``: a case that opens for the
  device later does not notify the customer (:meth:`rules.cases.CaseBook.record_alarm` asks) and
  is linked to the ticket;
* **updated** changes the subject/status; **solved** closes the ticket and, when asked
  (``resolve_case``), resolves its case.

The same event twice is harmless: tickets are keyed by the helpdesk's id within the tenant.

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> first = record_ticket_event(engine, "acme", TicketEvent("created", "ZD-1", "kim", "hp-1"),
...                             now=100.0)
>>> first.action, first.case_id
('opened', None)
>>> record_ticket_event(engine, "acme", TicketEvent("created", "ZD-1", "kim", "hp-1"),
...                     now=101.0).action  # the same event again
'updated'
>>> record_ticket_event(engine, "acme", TicketEvent("solved", "ZD-1"), now=200.0).action
'solved'
>>> engine.dispose()
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from rules.case_actions import Push, resolve
from rules.db import CaseEventRow, CaseRow, NoticeRow, TicketRow
from rules.errors import CaseActionError

__all__ = ["TicketEvent", "TicketOutcome", "record_ticket_event"]

_REF = re.compile(r"\bFW-(\d{1,12})\b")


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One helpdesk event, already validated (the API's schema makes it)."""

    event: Literal["created", "updated", "solved"]
    ticket_id: str
    customer_id: str = ""
    device_id: str = ""
    subject: str = ""
    #: when it happened at the helpdesk (None: now)
    at: float | None = None
    #: ``solved``: also resolve the linked case
    resolve_case: bool = False


@dataclass(frozen=True, slots=True)
class TicketOutcome:
    """What the event did: ``opened``/``attached``/``updated``/``solved``/``resolved``."""

    action: str
    ticket: int
    case_id: int | None = None
    #: a customer notice that had not gone out was withdrawn
    suppressed_notice: bool = False


def record_ticket_event(engine: Engine, tenant: str, event: TicketEvent, now: float,
                        push: Push | None = None) -> TicketOutcome:
    """Apply one helpdesk event to the tickets and cases of ``tenant``."""
    at = event.at if event.at is not None else now
    key = f"{tenant}:{event.ticket_id}"
    with Session(engine, expire_on_commit=False) as session:
        ticket = session.scalar(select(TicketRow).where(TicketRow.external_id == key))
        if ticket is None:
            ticket = TicketRow(external_id=key, tenant=tenant, customer_id=event.customer_id,
                               device_id=event.device_id, subject=event.subject,
                               opened_at=at, status="open")
            session.add(ticket)
            session.flush()
            action = "opened"
            case = _case_for(session, tenant, event)
            suppressed = False
            if case is not None:
                ticket.case_id = case.id
                suppressed = _withdraw_notice(session, case, event.ticket_id, at)
                session.add(CaseEventRow(
                    case_id=case.id, ts=at, kind="ticket",
                    detail=f"helpdesk ticket {event.ticket_id} opened: {event.subject}"
                           + ("; the customer notice was withdrawn" if suppressed else "")))
                action = "attached"
            session.commit()
            if event.event != "solved":
                return TicketOutcome(action, ticket.id, ticket.case_id, suppressed)
        elif event.event != "solved":
            values: dict[str, object] = {"updated_at": at}
            if event.subject:
                values["subject"] = event.subject
            if ticket.status == "solved":  # reopened at the helpdesk
                values.update(status="open", closed_at=None)
            session.execute(update(TicketRow).where(TicketRow.id == ticket.id).values(**values))
            session.commit()
            return TicketOutcome("updated", ticket.id, ticket.case_id)
        session.execute(update(TicketRow).where(TicketRow.id == ticket.id).values(
            status="solved", closed_at=at, updated_at=at))
        if ticket.case_id is not None:
            session.add(CaseEventRow(case_id=ticket.case_id, ts=at, kind="ticket",
                                     detail=f"helpdesk ticket {event.ticket_id} solved"))
        session.commit()
    if event.resolve_case and ticket.case_id is not None:
        try:
            resolve(engine, tenant, ticket.case_id, by="helpdesk",
                    comment=f"ticket {event.ticket_id} solved", now=at, push=push)
        except CaseActionError:
            return TicketOutcome("solved", ticket.id, ticket.case_id)  # already resolved
        return TicketOutcome("resolved", ticket.id, ticket.case_id)
    return TicketOutcome("solved", ticket.id, ticket.case_id)


def _case_for(session: Session, tenant: str, event: TicketEvent) -> CaseRow | None:
    """The case the ticket quotes (``FW-<id>``), else the device's open case."""
    quoted = _REF.search(event.subject)
    if quoted:
        case = session.scalar(select(CaseRow).where(CaseRow.id == int(quoted.group(1)),
                                                    CaseRow.tenant == tenant))
        if case is not None:
            return case
    if not event.device_id:
        return None
    return session.scalar(select(CaseRow).where(
        CaseRow.tenant == tenant, CaseRow.device_id == event.device_id,
        CaseRow.open_key.is_not(None)).order_by(CaseRow.id.desc()).limit(1))


def _withdraw_notice(session: Session, case: CaseRow, ticket_id: str, at: float) -> bool:
    """Suppress the case's customer notice if it has not gone out yet."""
    done = session.execute(update(NoticeRow).where(
        NoticeRow.case_id == case.id, NoticeRow.audience == "customer",
        NoticeRow.status == "pending").values(
            status="suppressed",
            last_error=f"not sent: the customer opened helpdesk ticket {ticket_id} first"))
    return bool(done.rowcount)  # type: ignore[attr-defined]
