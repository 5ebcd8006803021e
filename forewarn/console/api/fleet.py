"""``/api/v1/fleet``: counts by product and status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from forewarn.auth import Principal
from forewarn.console import queries
from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import FleetOverview
from forewarn.console.security import context, requires

__all__ = ["router"]

router = APIRouter(prefix="/fleet", tags=["fleet"])


@router.get("", response_model=FleetOverview, summary="The tenant's fleet at a glance")
def overview(who: Annotated[Principal, Depends(requires("viewer"))],
             ctx: Annotated[ConsoleContext, Depends(context)]) -> FleetOverview:
    """Devices by product and status, cases by severity and status."""
    return queries.fleet(ctx, who.tenant)
