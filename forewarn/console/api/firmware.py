"""``/api/v1/firmware``: the firmware rollout view, each version per product with the devices on
it and the case rate before and after devices moved to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from forewarn.auth import Principal
from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import FirmwareVersion, FirmwareView
from forewarn.console.security import context, requires
from rules.firmware import DEFAULT_WINDOW_S, rollout_view

__all__ = ["router"]

router = APIRouter(prefix="/firmware", tags=["firmware"])


def firmware_view(ctx: ConsoleContext, tenant: str, window_s: float) -> FirmwareView:
    """The tenant's versions at the console's "now" (the API's and the page's one query)."""
    rows = rollout_view(ctx.engine, tenant, now=ctx.clock(), window_s=window_s)
    return FirmwareView(window_s=window_s, versions=[FirmwareVersion.of(r) for r in rows])


@router.get("", response_model=FirmwareView, summary="Firmware versions and their case rates")
def list_firmware(
    who: Annotated[Principal, Depends(requires("viewer"))],
    ctx: Annotated[ConsoleContext, Depends(context)],
    window_days: Annotated[float, Query(gt=0, le=366)] = DEFAULT_WINDOW_S / 86_400.0,
) -> FirmwareView:
    """Every version the token's tenant's devices reported: devices on it, devices that moved
    to it, and cases per 1000 device-days in ``window_days`` before and after each move."""
    return firmware_view(ctx, who.tenant, window_days * 86_400.0)
