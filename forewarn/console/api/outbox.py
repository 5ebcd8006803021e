"""``/api/v1/outbox``: notices waiting, notices that failed, and sending a failed one again."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from sqlalchemy import update
from sqlalchemy.orm import Session

from forewarn.console import queries
from forewarn.console.schemas import NoticeOut, OutboxPage
from forewarn.console.security import Admin, Context, Viewer
from rules.db import NoticeRow

__all__ = ["router"]

router = APIRouter(prefix="/outbox", tags=["outbox"])

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=10**9)]


@router.get("", response_model=OutboxPage, summary="Notices by status")
def list_notices(who: Viewer, ctx: Context,
                 status: Literal["pending", "sent", "dead", "suppressed"] = "pending",
                 limit: Limit = 50, offset: Offset = 0) -> OutboxPage:
    """The tenant's notice counts and a page of notices in one status, newest first."""
    counts, items = queries.notices(ctx, who.tenant, (status,), limit, offset)
    return OutboxPage(counts=counts, items=items)


@router.get("/pending", response_model=OutboxPage, summary="Notices waiting for delivery")
def pending(who: Viewer, ctx: Context, limit: Limit = 50, offset: Offset = 0) -> OutboxPage:
    """Same as ``?status=pending``."""
    counts, items = queries.notices(ctx, who.tenant, ("pending",), limit, offset)
    return OutboxPage(counts=counts, items=items)


@router.get("/failed", response_model=OutboxPage, summary="Notices the outbox gave up on")
def failed(who: Viewer, ctx: Context, limit: Limit = 50, offset: Offset = 0) -> OutboxPage:
    """Dead notices with their last error."""
    counts, items = queries.notices(ctx, who.tenant, ("dead",), limit, offset)
    return OutboxPage(counts=counts, items=items)


@router.post("/{notice_id}/retry", response_model=NoticeOut,
             summary="Send a failed notice again")
def retry(notice_id: Annotated[int, Path(ge=1, le=2**62)],
          who: Admin, ctx: Context) -> NoticeOut:
    """Put a dead notice back in the queue (the dispatcher tries it at its next round); 409
    for a notice that is not dead. Its idempotency key is kept, so a channel that took it
    after all does not deliver it twice."""
    with Session(ctx.engine) as session:
        row = session.get(NoticeRow, notice_id)
        if row is None or row.tenant != who.tenant:
            raise HTTPException(404, f"no notice {notice_id}")
        if row.status != "dead":
            raise HTTPException(409, f"notice {notice_id} is {row.status}, not failed")
        session.execute(update(NoticeRow)
                        .where(NoticeRow.id == notice_id, NoticeRow.status == "dead")
                        .values(status="pending", attempts=0, next_attempt_at=0.0))
        session.commit()
        session.refresh(row)
        return queries.notice_out(row)
