"""The console's proactivity page, ``/proactivity``: ``forewarn report proactivity`` for the
logged-in tenant (tickets with a case before them, lead times, missed tickets, answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from forewarn.console.context import ConsoleContext
from forewarn.console.security import context, web_session
from forewarn.console.timefmt import span, when
from forewarn.report.proactivity import proactivity

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True))
templates.env.filters["when"] = when
templates.env.filters["span"] = span


@router.get("/proactivity", response_class=HTMLResponse)
def proactivity_page(request: Request, ctx: Annotated[ConsoleContext, Depends(context)],
                     days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    """The tenant's proactivity figures over the last ``days``."""
    session = web_session(request)
    if session is None:
        raise HTTPException(401, "log in first")
    report = proactivity(ctx.engine, days * 86400.0, ctx.clock(),
                         tenant=session.principal.tenant)
    return templates.TemplateResponse(request, "proactivity.html.j2", {
        "session": session, "active": "proactivity", "r": report, "days": days})
