"""``/api/v1/deadletters``: the messages core refused under the caller's tenant, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from forewarn.auth import Principal
from forewarn.console.context import ConsoleContext
from forewarn.console.dead_letters import DeadLetterPage, tenant_dead_letters
from forewarn.console.security import context, requires

__all__ = ["router"]

router = APIRouter(prefix="/deadletters", tags=["dead letters"])


@router.get("", response_model=DeadLetterPage, summary="Messages core refused, and why")
def list_dead_letters(
    who: Annotated[Principal, Depends(requires("viewer"))],
    ctx: Annotated[ConsoleContext, Depends(context)],
    reason: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeadLetterPage:
    """Counts by reason of the kept dead letters under the tenant's topics, and the newest
    ``limit`` of them (of one ``reason`` or all)."""
    return tenant_dead_letters(ctx, who.tenant, reason, limit)
