"""The REST API under ``/api/v1``: one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from forewarn.console.api import (
    cases,
    deadletters,
    devices,
    firmware,
    fleet,
    helpdesk,
    incidents,
    outbox,
    rules,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
for _module in (cases, incidents, devices, fleet, firmware, rules, outbox, deadletters,
                helpdesk):
    router.include_router(_module.router)
