"""``/api/v1/helpdesk/events``: tickets from a helpdesk (Zendesk, Freshdesk…) coming in.

The helpdesk calls with an agent token of the tenant (``Authorization: Bearer fw_…``, made with
``forewarn tokens create --role agent``), so the request guard refuses anything else before
reading its body. docs/helpdesk.md shows the triggers to paste into a helpdesk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from forewarn.console.security import Agent, Context
from rules.tickets import TicketEvent, record_ticket_event

__all__ = ["HelpdeskEventIn", "HelpdeskEventOut", "router"]

router = APIRouter(prefix="/helpdesk", tags=["helpdesk"])
_Name = Annotated[str, Field(max_length=64)]


class HelpdeskEventIn(BaseModel):
    """A ticket created, updated or solved at the helpdesk."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["created", "updated", "solved"]
    #: the helpdesk's ticket id
    ticket_id: Annotated[str, Field(min_length=1, max_length=100)]
    #: the customer's id in the registry ("" : from the device, when known)
    customer_id: _Name = ""
    device_id: _Name = ""
    #: a subject quoting ``FW-<case id>`` links the ticket to that case
    subject: Annotated[str, Field(max_length=500)] = ""
    #: when it happened (epoch seconds or ISO 8601); omitted: now
    at: datetime | float | None = None
    #: ``solved``: resolve the linked case too
    resolve_case: bool = False


class HelpdeskEventOut(BaseModel):
    """What forewarn did with the event."""

    #: opened (no case yet), attached (to an open case), updated, solved, resolved (the case too)
    action: str
    ticket: int
    case_id: int | None
    #: the case's customer notice had not gone out and never will (the customer called first)
    suppressed_notice: bool


@router.post("/events", response_model=HelpdeskEventOut, summary="A helpdesk ticket event")
def helpdesk_event(body: HelpdeskEventIn, who: Agent, ctx: Context) -> HelpdeskEventOut:
    """Record a ticket; it suppresses or attaches to the device's case, or resolves it."""
    customer = body.customer_id
    if body.device_id:
        meta = (ctx.registry.lookup(who.tenant, body.device_id, "")
                if ctx.registry is not None else None)
        known = meta is not None and meta.customer_id != f"{who.tenant}/{body.device_id}"
        if known and meta is not None:
            customer = meta.customer_id
        elif not customer:
            customer = f"{who.tenant}/{body.device_id}"  # the registry's unknown customer
    at = body.at.timestamp() if isinstance(body.at, datetime) else body.at
    outcome = record_ticket_event(ctx.engine, who.tenant, TicketEvent(
        body.event, body.ticket_id, customer, body.device_id, body.subject, at,
        body.resolve_case), now=ctx.clock(), push=ctx.helpdesk)
    return HelpdeskEventOut(action=outcome.action, ticket=outcome.ticket,
                            case_id=outcome.case_id, suppressed_notice=outcome.suppressed_notice)
