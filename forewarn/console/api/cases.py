"""``/api/v1/cases``: the queue (filters, paging), one case, and what an agent does to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from forewarn.console import queries
from forewarn.console.actions import apply_action
from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import (
    AssignBody,
    CaseDetail,
    CasePage,
    CaseStatus,
    NoteBody,
    ResolveBody,
    Severity,
)
from forewarn.console.security import Agent, Context, Viewer
from rules.resolution import Resolution

__all__ = ["router"]

router = APIRouter(prefix="/cases", tags=["cases"])

CaseId = Annotated[int, Path(ge=1, le=2**62, description="the case number (FW-<id>)")]


@router.get("", response_model=CasePage, summary="The case queue, most urgent first")
def list_cases(
    who: Viewer,
    ctx: Context,
    status: Annotated[list[CaseStatus], Query()] = [],  # noqa: B006
    severity: Annotated[list[Severity], Query()] = [],  # noqa: B006
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    sort: queries.SortOrder = "priority",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> CasePage:
    """Cases of the token's tenant. ``status`` and ``severity`` may repeat."""
    filters = queries.CaseFilters(status, severity, device_id, customer_id, rule)
    return queries.case_page(ctx, who.tenant, filters, limit, offset, sort)


def _detail(ctx: ConsoleContext, tenant: str, case_id: int) -> CaseDetail:
    detail = queries.case_detail(ctx, tenant, case_id)
    if detail is None:
        raise HTTPException(404, f"no case {case_id}")
    return detail


@router.get("/{case_id}", response_model=CaseDetail, summary="One case with its evidence")
def get_case(case_id: CaseId, who: Viewer, ctx: Context) -> CaseDetail:
    """Evidence, timeline and the notices exactly as they were sent."""
    return _detail(ctx, who.tenant, case_id)


@router.post("/{case_id}/acknowledge", response_model=CaseDetail,
             summary="Acknowledge a case (stops escalation)")
def acknowledge(case_id: CaseId, who: Agent, ctx: Context) -> CaseDetail:
    """Idempotent; 409 on a resolved case."""
    apply_action(ctx, who, case_id, "acknowledge")
    return _detail(ctx, who.tenant, case_id)


@router.post("/{case_id}/assign", response_model=CaseDetail, summary="Assign a case")
def assign(case_id: CaseId, body: AssignBody, who: Agent, ctx: Context) -> CaseDetail:
    """Give the case to someone (``""`` unassigns it)."""
    apply_action(ctx, who, case_id, "assign", body.assignee.strip())
    return _detail(ctx, who.tenant, case_id)


@router.post("/{case_id}/notes", response_model=CaseDetail, status_code=201,
             summary="Add a note to a case")
def add_note(case_id: CaseId, body: NoteBody, who: Agent, ctx: Context) -> CaseDetail:
    """The note becomes a line of the case's timeline."""
    apply_action(ctx, who, case_id, "note", body.text)
    return _detail(ctx, who.tenant, case_id)


@router.post("/{case_id}/resolve", response_model=CaseDetail, summary="Resolve a case")
def resolve(case_id: CaseId, body: ResolveBody, who: Agent, ctx: Context) -> CaseDetail:
    """Needs an outcome: ``confirmed`` with a ``category`` from the product's fault categories,
    ``false_alarm`` with a ``reason``, ``customer_caused`` or ``duplicate`` (422 otherwise);
    stored as a label with the case's evidence window. A case that resolved itself can be given
    its outcome once (its timeline says ``labelled``); 409 when it already has one. The same
    problem coming back opens a case again."""
    apply_action(ctx, who, case_id, "resolve", body.comment,
                 Resolution(body.outcome, category=body.category, reason=body.reason))
    return _detail(ctx, who.tenant, case_id)
