"""The support console's web pages: log in with a token, the case queue, a case, the fleet.

Server-rendered Jinja templates; the only script is the chart on the case and device pages
(uPlot, vendored under ``static/vendor/uplot`` with its licence). Forms that change a case post
the session's CSRF secret; the session cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from forewarn.auth import Principal
from forewarn.console import queries
from forewarn.console.actions import apply_action
from forewarn.console.advice import next_steps
from forewarn.console.api import devices as device_api
from forewarn.console.api.firmware import firmware_view
from forewarn.console.context import ConsoleContext
from forewarn.console.dead_letters import tenant_dead_letters
from forewarn.console.security import (
    LOGIN_COOKIE,
    LOGIN_FORM_MAX_AGE_S,
    SESSION_COOKIE,
    Context,
    WebSession,
    check_csrf,
    check_login_csrf,
    login_csrf,
    sign_session,
    web_session,
)
from forewarn.console.timefmt import span, when
from forewarn.console.units import unit, units
from forewarn.incidents import incident_detail, incident_list
from rules import case_actions
from rules.resolution import FALSE_ALARM_REASONS, OUTCOMES, Resolution

__all__ = ["error_page", "router", "wants_html"]

router = APIRouter(include_in_schema=False)
# Starlette's own environment escapes only templates named *.html; ours are *.html.j2, so the
# environment is made here with escaping on for every template (issue 18.1)
templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True))
#: history shown before a fault's onset and after the case's last event
_BEFORE_S = 24 * 3600.0
_AFTER_S = 12 * 3600.0


templates.env.filters["when"] = when
templates.env.filters["span"] = span


def wants_html(request: Request) -> bool:
    """True for the web pages (not the API, docs or metrics)."""
    path = request.url.path
    return not path.startswith(("/api/", "/docs", "/openapi", "/metrics", "/static", "/healthz",
                                "/favicon.ico"))


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as a page; 401 sends the browser to the login page instead."""
    if status == 401:
        return RedirectResponse(f"/login?{urlencode({'next': request.url.path})}", 303)
    return templates.TemplateResponse(request, "error.html.j2",
                                      {"status": status, "message": message, "session": None},
                                      status_code=status)


def _session(request: Request) -> WebSession:
    session = web_session(request)
    if session is None:
        raise HTTPException(401, "log in first")
    return session


Session = Annotated[WebSession, Depends(_session)]


def _render(request: Request, name: str, session: WebSession | None, **values: Any) -> Response:
    values["session"] = session
    return templates.TemplateResponse(request, name, values)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Context, next: str = "/") -> Response:
    """The login page: paste an API token."""
    return _login_page(request, ctx, next, "")


def _login_page(request: Request, ctx: ConsoleContext, next: str, error: str,
                status: int = 200) -> Response:
    """The login form with a fresh CSRF pair (cookie and hidden field)."""
    cookie, nonce = login_csrf(ctx)
    response = _render(request, "login.html.j2", None, next=_safe_next(next), error=error,
                       csrf=nonce)
    response.status_code = status
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=LOGIN_FORM_MAX_AGE_S, httponly=True,
                        samesite="strict", secure=ctx.secure_cookies, path="/login")
    return response


#: a path of this site with an optional query: no scheme, no host, no quotes or markup
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~%/?=&+:@,;]*")


def _safe_next(target: str) -> str:
    """``target`` when it is a local path, else ``/``: never a redirect to another host."""
    return target if _LOCAL_PATH.fullmatch(target) else "/"


@router.post("/login")
def login(request: Request, ctx: Context, token: Annotated[str, Form(max_length=200)],
          next: Annotated[str, Form(max_length=500)] = "/",
          csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Exchange a valid token for a session cookie (at most a few failures a minute)."""
    address = request.client.host if request.client else "unknown"
    wait = ctx.login_limiter.retry_after(address)
    if wait > 0:
        response = _login_page(request, ctx, next, "Too many failed logins from this address: "
                               f"try again in {math.ceil(wait)} s.", 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    if not check_login_csrf(ctx, request.cookies.get(LOGIN_COOKIE), csrf):
        return _login_page(request, ctx, next, "The login form expired or came from another "
                           "site: log in again here.", 403)
    principal = ctx.tokens.verify(token)
    if principal is None:
        ctx.login_limiter.failed(address)
        return _login_page(request, ctx, next, "That token is not valid (or was revoked).",
                           401)
    ctx.login_limiter.succeeded(address)
    response = RedirectResponse(_safe_next(next), 303)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.set_cookie(SESSION_COOKIE, sign_session(ctx, principal),
                        max_age=ctx.session_max_age_s, httponly=True, samesite="strict",
                        secure=ctx.secure_cookies, path="/")
    return response


@router.post("/logout")
def logout(session: Session, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Forget the session."""
    check_csrf(session, csrf)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def queue(
    request: Request, session: Session, ctx: Context,
    status: Annotated[str, Query(pattern="^(unresolved|open|acknowledged|resolved|all)$")]
    = "unresolved",
    severity: Annotated[str, Query(pattern="^(|info|warning|critical)$")] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The case queue: unresolved first, worst and most urgent on top."""
    statuses = {"unresolved": ("open", "acknowledged"), "all": ()}.get(status, (status,))
    filters = queries.CaseFilters(statuses, (severity,) if severity else ())
    per_page = 50
    result = queries.case_page(ctx, session.principal.tenant, filters, per_page,
                               (page - 1) * per_page)
    overview = queries.fleet(ctx, session.principal.tenant)
    return _render(request, "queue.html.j2", session, cases=result, status=status,
                   severity=severity, page=page, pages=max(1, -(-result.total // per_page)),
                   overview=overview, now=ctx.clock())


#: a time this far past the console's "now" was written on another clock (a demo's outbox and
#: case book run on the wall clock while its data, and so "now", are simulated)
_OTHER_CLOCK_S = 3600.0


def _chart(ctx: ConsoleContext, tenant: str, device_id: str, product: str, start: float,
           stop: float, marks: list[dict[str, Any]], focus: list[str]) -> str:
    data = queries.telemetry(ctx, tenant, device_id, start, stop)
    payload = data.model_dump()
    payload["marks"] = marks
    payload["units"] = units(product, data.fields)
    payload["focus"] = [f for f in focus if f in data.fields] or data.fields[:1]
    # markup characters as JSON escapes: nothing in the data can end the <script> block
    text = json.dumps(payload, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: int, session: Session, ctx: Context) -> Response:
    """A case: what happened, the evidence, the chart, the timeline, the notices as sent."""
    if not 1 <= case_id <= 2**62:
        raise HTTPException(404, f"no case {case_id}")
    tenant = session.principal.tenant
    case = queries.case_detail(ctx, tenant, case_id)
    if case is None:
        raise HTTPException(404, f"no case FW-{case_id}")
    marks: list[dict[str, Any]] = [
        {"t": case.fault_started_at, "label": "onset", "kind": "onset"},
        {"t": case.opened_at, "label": "case opened", "kind": "opened"}]
    device = queries.device_detail(ctx, tenant, case.device_id)
    newest = device.last_seen if device is not None and device.last_seen is not None else None
    # case events within the device's data (a demo's wall-clock events would stretch the chart)
    marks += [{"t": e.ts, "label": e.kind, "kind": e.kind} for e in case.timeline
              if e.kind != "opened" and case.fault_started_at - _BEFORE_S <= e.ts
              and (newest is None or e.ts <= newest + _AFTER_S)]
    stop = max([case.opened_at] + [m["t"] for m in marks]) + _AFTER_S
    if newest is not None:
        stop = min(stop, max(newest + 1.0, case.opened_at + 3600.0))
    stop = max(stop, max(m["t"] for m in marks) + 900.0)  # every mark in view
    evidence_fields = sorted({str(e.get("field")) for e in case.evidence.get("events", [])
                              if isinstance(e, dict) and e.get("field")})
    chart = _chart(ctx, tenant, case.device_id, case.product,
                   case.fault_started_at - _BEFORE_S, stop, marks,
                   [case.field, *evidence_fields])
    descriptions = ctx.rule_descriptions()
    now = ctx.clock()
    return _render(request, "case.html.j2", session, case=case, chart=chart,
                   evidence_events=case.evidence.get("events", []), now=now,
                   can_act=session.principal.allows("agent"),
                   # a case that resolved itself can still be given its outcome, once
                   labelled=bool(case_actions.labels(ctx.engine, tenant, case_id)),
                   causes=[(r, descriptions.get(r, "")) for r in case.rules],
                   outcomes=OUTCOMES, reasons=FALSE_ALARM_REASONS,
                   categories=ctx.fault_categories(case.product),
                   steps=next_steps(case), field_unit=unit(case.product, case.field),
                   other_clock=now + _OTHER_CLOCK_S)


@router.post("/cases/{case_id}/{action}")
def case_action(
    case_id: int, action: str, session: Session, ctx: Context,
    csrf: Annotated[str, Form(max_length=100)] = "",
    text: Annotated[str, Form(max_length=4000)] = "",
    outcome: Annotated[str, Form(max_length=32)] = "",
    category: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Acknowledge, assign, note or resolve (with an outcome) from the case page (agents and
    admins)."""
    check_csrf(session, csrf)
    if not 1 <= case_id <= 2**62:
        raise HTTPException(404, f"no case {case_id}")
    who: Principal = session.principal
    if not who.allows("agent"):
        raise HTTPException(403, "viewers cannot change cases")
    if action not in ("acknowledge", "assign", "note", "resolve"):
        raise HTTPException(404, f"no action {action}")
    if action == "note" and not text.strip():
        raise HTTPException(422, "a note needs some text")
    # the form sends the category and the reason selects both: keep the one the outcome needs
    resolution = None if action != "resolve" or not outcome else Resolution(
        outcome, category=category if outcome == "confirmed" else "",
        reason=reason if outcome == "false_alarm" else "")
    apply_action(ctx, who, case_id, action, text.strip(),  # type: ignore[arg-type]
                 resolution)
    return RedirectResponse(f"/cases/{case_id}", 303)


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(request: Request, session: Session, ctx: Context) -> Response:
    """Devices by product and status, each with its last sample and open cases."""
    tenant = session.principal.tenant
    return _render(request, "fleet.html.j2", session, overview=queries.fleet(ctx, tenant),
                   devices=queries.devices(ctx, tenant), now=ctx.clock())


@router.get("/firmware", response_class=HTMLResponse)
def firmware_page(request: Request, session: Session, ctx: Context,
                  window_days: Annotated[float, Query(gt=0, le=366)] = 30.0) -> Response:
    """Each firmware version per product: devices on it, case rates before and after."""
    view = firmware_view(ctx, session.principal.tenant, window_days * 86_400.0)
    return _render(request, "firmware.html.j2", session, view=view, window_days=window_days)


@router.get("/deadletters", response_class=HTMLResponse)
def dead_letters_page(request: Request, session: Session, ctx: Context,
                      reason: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """The newest messages core refused under the tenant's topics, with counts by reason."""
    page = tenant_dead_letters(ctx, session.principal.tenant, reason or None, 100)
    return _render(request, "deadletters.html.j2", session, page=page, reason=reason or "")


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, session: Session, ctx: Context) -> Response:
    """Fleet incidents of the tenant, newest first (``forewarn.incidents``)."""
    return _render(request, "incidents.html.j2", session,
                   incidents=incident_list(ctx.engine, tenant=session.principal.tenant),
                   detail=None)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: int, session: Session,
                  ctx: Context) -> Response:
    """One fleet incident and the cases it links."""
    detail = incident_detail(ctx.engine, incident_id, session.principal.tenant)
    if detail is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return _render(request, "incidents.html.j2", session, incidents=[], detail=detail)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(request: Request, device_id: str, session: Session, ctx: Context) -> Response:
    """A device's last two days of telemetry and its cases (resolved ones too)."""
    tenant = session.principal.tenant
    device = queries.device_detail(ctx, tenant, device_id[:64])
    if device is None:
        raise HTTPException(404, f"no device {device_id[:64]}")
    stop = (device.last_seen or ctx.clock()) + 1.0
    marks = [{"t": c.opened_at, "label": c.ref, "kind": "opened"} for c in device.history
             if stop - 2 * 86400.0 <= c.opened_at <= stop]
    chart = _chart(ctx, tenant, device_id, device.product, stop - 2 * 86400.0, stop, marks,
                   [c.field for c in device.cases])
    return _render(request, "device.html.j2", session, device=device, chart=chart,
                   now=ctx.clock(), adjustments=device_api.adjustments(ctx, tenant, device_id),
                   can_act=session.principal.allows("agent"))


@router.post("/devices/{device_id}/feedback/{feedback_id}/undo")
def undo_feedback(
    device_id: str, feedback_id: int, session: Session, ctx: Context,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Undo an alarm level a false alarm raised (agents and admins)."""
    check_csrf(session, csrf)
    if not 1 <= feedback_id <= 2**62:
        raise HTTPException(404, f"no adjustment {feedback_id}")
    if not session.principal.allows("agent"):
        raise HTTPException(403, "viewers cannot undo adjustments")
    device_api.undo_adjustment(ctx, session.principal, device_id[:64], feedback_id)
    return RedirectResponse(f"/devices/{device_id[:64]}", 303)
