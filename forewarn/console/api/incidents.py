"""``/api/v1/incidents``: fleet incidents of the caller's tenant, one with its cases, and an
agent's decision on held customer messages or closing it (``forewarn.incidents``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict

from forewarn.console.context import ConsoleContext
from forewarn.console.security import Agent, Context, Viewer
from forewarn.incidents import (
    IncidentDetailView,
    IncidentView,
    close_incident,
    decide_incident,
    incident_detail,
    incident_list,
)
from rules.errors import CaseStateError
from rules.registry import CustomerRegistry

__all__ = ["router"]

router = APIRouter(prefix="/incidents", tags=["incidents"])

IncidentId = Annotated[int, Path(ge=1, le=2**62, description="the incident's number (INC-<id>)")]


class DecideBody(BaseModel):
    """What to do with the customer messages an incident holds."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["message", "quiet"]


@router.get("", response_model=list[IncidentView], summary="Fleet incidents, newest first")
def list_incidents(who: Viewer, ctx: Context,
                   status: Annotated[Literal["open", "closed"] | None, Query()] = None,
                   ) -> list[IncidentView]:
    """Incidents of the token's tenant (``status``: only open or only closed ones)."""
    return incident_list(ctx.engine, status, who.tenant)


def _detail(ctx: ConsoleContext, tenant: str, incident_id: int) -> IncidentDetailView:
    detail = incident_detail(ctx.engine, incident_id, tenant)
    if detail is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return detail


@router.get("/{incident_id}", response_model=IncidentDetailView,
            summary="One incident with the cases it links and its flag-only devices")
def get_incident(incident_id: IncidentId, who: Viewer, ctx: Context) -> IncidentDetailView:
    """The incident, its cohort and rule, every linked case, and under ``flagged`` the
    devices in it by a peer flag only (device, detector, field, time)."""
    return _detail(ctx, who.tenant, incident_id)


@router.post("/{incident_id}/decide", response_model=IncidentDetailView,
             summary="Send or drop the customer messages an incident holds")
def decide(incident_id: IncidentId, body: DecideBody, who: Agent,
           ctx: Context) -> IncidentDetailView:
    """``message``: each held customer gets the incident's message (once per device);
    ``quiet``: none. 409 when it was decided already."""
    _detail(ctx, who.tenant, incident_id)
    try:
        decide_incident(ctx.engine, ctx.registry or CustomerRegistry(), incident_id,
                        body.decision, who.name, ctx.clock())
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from exc
    return _detail(ctx, who.tenant, incident_id)


@router.post("/{incident_id}/close", response_model=IncidentDetailView,
             summary="Close an open incident")
def close(incident_id: IncidentId, who: Agent, ctx: Context) -> IncidentDetailView:
    """Later cases of its cohort and rule may open a new incident. 409 when closed already."""
    _detail(ctx, who.tenant, incident_id)
    try:
        close_incident(ctx.engine, incident_id, who.name, ctx.clock())
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from exc
    return _detail(ctx, who.tenant, incident_id)
