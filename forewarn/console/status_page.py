"""The customer's status page of one case, ``/s/<token>``, and the answers posted on it.

No login: the signed token (:mod:`rules.status_link`) is the key, and it names one case only;
a token that is tampered with, expired, or whose case closed more than ``[serve]
status_grace_days`` ago gets 404, as does any token while no status secret is configured. The
page shows the case in the customer's language and time zone (from the registry) and nothing
internal: no evidence, no scores, no other device or customer.

Answers ("thanks, noted", "book a visit", "it's fine", "call me") are forms with a CSRF value
signed into a SameSite=Strict cookie (the login form's scheme of
:mod:`forewarn.console.security`), limited per address and case (429 past
``[serve] status_answers_per_hour``), and idempotent (:func:`rules.answers.record_answer`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.console.context import ConsoleContext
from forewarn.console.security import Context, check_login_csrf, login_csrf
from rules.answers import ANSWER_KINDS, answers, record_answer
from rules.catalogue import LANGUAGES, translations
from rules.db import CaseRow, DeviceRow
from rules.messages import GLOSSARY, case_ref
from rules.registry import DeviceMeta
from rules.timeparse import zone

__all__ = ["STATUS_COOKIE", "router"]

router = APIRouter(include_in_schema=False)
#: the status page's CSRF cookie (only sent to /s/ pages, never by another site's form)
STATUS_COOKIE = "forewarn_status"
_TEMPLATES = Path(__file__).parent / "templates"


def _(message: str) -> str:
    """Marks a message for extraction; translated when the page is rendered."""
    return message


#: preferred visit windows (key, label)
_WINDOWS = (("weekday-morning", _("Weekday mornings (8–12)")),
            ("weekday-afternoon", _("Weekday afternoons (12–17)")),
            ("weekday-evening", _("Weekday evenings (17–20)")),
            ("saturday", _("Saturdays")))
_ANSWER_LABELS = {"noted": _("Thanks, noted"), "visit": _("Visit booked"),
                  "fine": _("It's fine"), "call": _("Call me")}
_STATES = {"open": ("warn", _("We noticed an early sign of trouble and are looking at it")),
           "acknowledged": ("team", _("Our team is working on it")),
           "visit": ("team", _("A visit is being arranged")),
           "resolved": ("ok", _("Working normally again"))}


@cache
def _env(language: str) -> Environment:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True,
                      extensions=["jinja2.ext.i18n"])
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def _when(ts: float, tz: str) -> str:
    local = datetime.fromtimestamp(ts, tz=UTC).astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz)


def _word(language: str, key: str) -> str:
    term = key or "no_field"
    if term in GLOSSARY:
        return translations(language).pgettext("glossary", term)
    return key.replace("_", " ")


def _case(ctx: ConsoleContext, token: str) -> CaseRow:
    """The case a live token names; 404 for anything else (never says why)."""
    links = ctx.status_links
    case_id = links.case_id(token) if links is not None else None
    if links is None or case_id is None:
        raise HTTPException(404, "no such page")
    with Session(ctx.engine, expire_on_commit=False) as session:
        case = session.get(CaseRow, case_id)
    if case is None or not links.live(case.resolved_at):
        raise HTTPException(404, "no such page")
    return case


def _meta(ctx: ConsoleContext, case: CaseRow) -> DeviceMeta | None:
    return (ctx.registry.lookup(case.tenant, case.device_id, case.product)
            if ctx.registry is not None else None)


@router.get("/s/{token}", response_class=HTMLResponse)
def status_page(request: Request, ctx: Context, token: str, answered: str = "") -> Response:
    """The case as the customer sees it."""
    case = _case(ctx, token)
    meta = _meta(ctx, case)
    language = meta.language if meta is not None and meta.language in LANGUAGES else "en"
    tz = meta.timezone if meta is not None else "UTC"
    words = translations(language)
    given = answers(ctx.engine, case.id)
    state = "resolved" if case.status == "resolved" else (
        "visit" if any(a.kind == "visit" for a in given) else case.status)
    state_class, state_text = _STATES.get(state, _STATES["open"])
    with Session(ctx.engine) as session:
        device = session.scalar(select(DeviceRow).where(DeviceRow.tenant == case.tenant,
                                                        DeviceRow.device_id == case.device_id))
    try:
        fields = json.loads(case.evidence_json).get("fields") or [case.field]
    except (ValueError, AttributeError):
        fields = [case.field]
    cookie, csrf = login_csrf(ctx)
    values: dict[str, Any] = {
        "language": language, "token": token, "csrf": csrf, "case_ref": case_ref(case.id),
        "product": _word(language, case.product), "device_id": case.device_id,
        "state_class": state_class, "state_text": words.gettext(state_text),
        "fields": words.pgettext("joins field names", " and ").join(
            _word(language, f) for f in fields[:3]),
        "n_fields": len(fields[:3]), "since": _when(case.fault_started_at, tz),
        "predicted": (_when(case.predicted_failure_at, tz)
                      if case.predicted_failure_at is not None and state != "resolved"
                      else None),
        "device_seen": (_when(device.last_seen, tz)
                        if device is not None and device.last_seen is not None else None),
        "timezone": tz, "resolved": state == "resolved",
        "windows": [(key, words.gettext(label)) for key, label in _WINDOWS],
        "answered": answered in ANSWER_KINDS,
        "given": [(_when(a.ts, tz), words.gettext(_ANSWER_LABELS[a.kind]),
                   _detail(words.gettext, a.kind, a.detail)) for a in given
                  if a.kind in _ANSWER_LABELS],
    }
    html = _env(language).get_template("status.html.j2").render(values)
    response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
    response.set_cookie(STATUS_COOKIE, cookie, max_age=3600, path="/s/", httponly=True,
                        samesite="strict", secure=ctx.secure_cookies)
    return response


def _detail(gettext: Any, kind: str, detail: str) -> str:
    if kind != "visit":
        return detail
    labels = dict(_WINDOWS)
    return ", ".join(gettext(labels[w]) if w in labels else w for w in detail.split(", ") if w)


@router.post("/s/{token}")
def answer(request: Request, ctx: Context, token: str,
           csrf: Annotated[str, Form(max_length=200)] = "",
           kind: Annotated[str, Form(max_length=16)] = "",
           detail: Annotated[str, Form(max_length=500)] = "",
           window: Annotated[list[str] | None, Form()] = None) -> Response:
    """Record the customer's answer, then show the page again (303)."""
    case = _case(ctx, token)
    if not check_login_csrf(ctx, request.cookies.get(STATUS_COOKIE), csrf):
        raise HTTPException(403, "the form is stale: reload the page")
    if kind not in ANSWER_KINDS:
        raise HTTPException(422, f"unknown answer {kind!r}")
    address = f"{request.client.host if request.client else '-'}|{case.id}"
    wait = ctx.status_limiter.retry_after(address)
    if wait > 0:
        raise HTTPException(429, "too many answers: try again later",
                            headers={"Retry-After": str(int(wait) + 1)})
    ctx.status_limiter.failed(address)  # every answer counts against the hour's budget
    if case.status == "resolved":
        raise HTTPException(409, "the case is closed")
    if kind == "visit":  # in a fixed order: the same choice is the same answer
        detail = ", ".join(key for key, _label in _WINDOWS if key in (window or []))
    team = ctx.team_push
    record_answer(ctx.engine, case.id, kind, detail, now=ctx.clock(), team=team)
    return RedirectResponse(f"/s/{token}?answered={kind}", 303)
