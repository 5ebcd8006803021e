"""What a support agent does to a case: acknowledge, assign, note, resolve — each a timeline line.

Every action names the tenant: a case of another tenant is "not found", never touched. Actions on
a case in the wrong state raise :class:`CaseStateError` (the console answers 409).

>>> from rules.db import CaseRow, connect
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s:
...     s.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump", rule="leak",
...                   severity="warning", status="open", open_key="acme/hp-1/leak",
...                   fault_started_at=0, opened_at=60, field="t", peak_score=0.9, summary="",
...                   evidence_json="{}"))
...     s.commit()
>>> acknowledge(engine, "other", 1, by="kim", now=100.0)
Traceback (most recent call last):
...
rules.case_actions.CaseNotFoundError: no case 1
>>> acknowledge(engine, "acme", 1, by="kim", now=100.0).status
'acknowledged'
>>> assign(engine, "acme", 1, "kim", by="lee", now=110.0).assignee
'kim'
>>> resolve(engine, "acme", 1, by="kim", comment="compressor replaced", now=200.0).status
'resolved'
>>> [e.kind for e in timeline(engine, "acme", 1)]
['acknowledged', 'assigned', 'resolved']
>>> engine.dispose()
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from rules.db import CaseEventRow, CaseRow
from rules.errors import RuleError

__all__ = [
    "CaseActionError",
    "CaseNotFoundError",
    "CaseState",
    "CaseStateError",
    "acknowledge",
    "assign",
    "assignee_of",
    "note",
    "resolve",
    "timeline",
]


class CaseActionError(RuleError):
    """An agent's action could not be applied."""


class CaseNotFoundError(CaseActionError):
    """No such case for this tenant."""


class CaseStateError(CaseActionError):
    """The case is in a state that does not allow the action (e.g. acknowledging a resolved one)."""


@dataclass(frozen=True, slots=True)
class CaseState:
    """A case's status and assignee after an action."""

    case_id: int
    status: str
    assignee: str


def _case(session: Session, tenant: str, case_id: int) -> CaseRow:
    case = session.scalar(select(CaseRow).where(CaseRow.id == case_id, CaseRow.tenant == tenant))
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return case


def _assignee(session: Session, case_id: int) -> str:
    detail = session.scalar(
        select(CaseEventRow.detail)
        .where(CaseEventRow.case_id == case_id, CaseEventRow.kind == "assigned")
        .order_by(CaseEventRow.id.desc()).limit(1))
    return (detail or "").split(" (by ", 1)[0]


def _line(by: str, text: str = "") -> str:
    if text and by:
        return f"{text} (by {by})"
    return text or by


def acknowledge(engine: Engine, tenant: str, case_id: int, by: str, now: float) -> CaseState:
    """Mark an open case acknowledged (stops escalation); acknowledging twice is harmless."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        if case.status == "resolved":
            raise CaseStateError(f"case {case_id} is resolved")
        if case.status == "open":
            done = session.execute(update(CaseRow).where(
                CaseRow.id == case_id, CaseRow.status == "open")
                .values(status="acknowledged", acknowledged_at=now))
            if done.rowcount == 1:  # type: ignore[attr-defined]
                session.add(CaseEventRow(case_id=case_id, ts=now, kind="acknowledged",
                                         detail=by))
            session.commit()
        return CaseState(case_id, "acknowledged", _assignee(session, case_id))


def assign(engine: Engine, tenant: str, case_id: int, assignee: str, by: str,
           now: float) -> CaseState:
    """Give a case to an agent (an empty ``assignee`` unassigns it)."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        # the detail starts with the assignee: _assignee reads it back from there
        session.add(CaseEventRow(case_id=case_id, ts=now, kind="assigned",
                                 detail=f"{assignee} (by {by})"))
        session.commit()
        return CaseState(case_id, case.status, assignee)


def note(engine: Engine, tenant: str, case_id: int, text: str, by: str, now: float) -> CaseState:
    """Add an agent's note to the case timeline."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        session.add(CaseEventRow(case_id=case_id, ts=now, kind="note", detail=_line(by, text)))
        session.commit()
        return CaseState(case_id, case.status, _assignee(session, case_id))


def resolve(engine: Engine, tenant: str, case_id: int, by: str, comment: str,
            now: float) -> CaseState:
    """Resolve a case by hand; the same problem coming back opens (or reopens) a case again."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        if case.status == "resolved":
            raise CaseStateError(f"case {case_id} is already resolved")
        done = session.execute(update(CaseRow).where(
            CaseRow.id == case_id, CaseRow.status != "resolved")
            .values(status="resolved", open_key=None, resolved_at=now))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise CaseStateError(f"case {case_id} is already resolved")
        session.add(CaseEventRow(case_id=case_id, ts=now, kind="resolved",
                                 detail=_line(by, comment or "resolved by an agent")))
        session.commit()
        return CaseState(case_id, "resolved", _assignee(session, case_id))


def assignee_of(engine: Engine, case_id: int) -> str:
    """Who a case is assigned to ("" : nobody)."""
    with Session(engine) as session:
        return _assignee(session, case_id)


def timeline(engine: Engine, tenant: str, case_id: int) -> list[CaseEventRow]:
    """A tenant's case timeline, oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        _case(session, tenant, case_id)
        return list(session.scalars(select(CaseEventRow).where(
            CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)))
