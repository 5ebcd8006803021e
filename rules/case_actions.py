"""What a support agent does to a case: acknowledge, assign, note, resolve — each a timeline line.

Every action names the tenant: a case of another tenant is "not found", never touched. Actions on
a case in the wrong state raise :class:`CaseStateError` (the console answers 409). With a
:class:`Push`, each action also queues a team notice in the outbox (same transaction), so a
helpdesk behind the signed webhook channel sees what the agents did (docs/helpdesk.md).

>>> from rules.db import CaseRow, NoticeRow, connect
>>> from rules.resolution import Resolution
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
rules.errors.CaseNotFoundError: no case 1
>>> acknowledge(engine, "acme", 1, by="kim", now=100.0).status
'acknowledged'
>>> assign(engine, "acme", 1, "kim", by="lee", now=110.0).assignee
'kim'
>>> resolve(engine, "acme", 1, by="kim", comment="compressor replaced", now=200.0,
...         resolution=Resolution("confirmed", category="gremlins"), categories=("leak",))
Traceback (most recent call last):
...
rules.errors.ResolutionError: fault category 'gremlins' is not one of this product's: leak
>>> resolve(engine, "acme", 1, by="kim", comment="compressor replaced", now=200.0,
...         resolution=Resolution("confirmed", category="leak"), categories=("leak",)).status
'resolved'
>>> [(x.outcome, x.category, x.window_start, x.window_end) for x in labels(engine, "acme", 1)]
[('confirmed', 'leak', 0.0, 200.0)]
>>> [e.kind for e in timeline(engine, "acme", 1)]
['acknowledged', 'assigned', 'resolved']
>>> with Session(engine) as s:  # no Push given: nothing was queued for a helpdesk
...     s.query(NoticeRow).count()
0
>>> engine.dispose()
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from rules.db import CaseEventRow, CaseRow, LabelRow, NoticeRow
from rules.errors import CaseActionError, CaseNotFoundError, CaseStateError
from rules.feedback import FeedbackPolicy, learn_false_alarm
from rules.messages import update_message
from rules.resolution import Resolution

__all__ = [
    "CaseActionError",
    "CaseNotFoundError",
    "CaseState",
    "CaseStateError",
    "Push",
    "acknowledge",
    "assign",
    "assignee_of",
    "labels",
    "note",
    "product_of",
    "resolve",
    "timeline",
]


@dataclass(frozen=True, slots=True)
class CaseState:
    """A case's status and assignee after an action."""

    case_id: int
    status: str
    assignee: str


@dataclass(frozen=True, slots=True)
class Push:
    """Where agents' actions go as team notices: an outbox channel (e.g. ``webhook``) and its
    recipient ("" : the channel's default)."""

    channel: str
    recipient: str = ""


def _record(session: Session, case: CaseRow, kind: str, detail: str, now: float,
            push: Push | None) -> None:
    """A timeline line, and with ``push`` the team notice about it (keyed by the line's id)."""
    event = CaseEventRow(case_id=case.id, ts=now, kind=kind, detail=detail)
    session.add(event)
    if push is None:
        return
    session.flush()  # the event's id makes the notice's idempotency key
    subject, body = update_message(kind, case.id, case.severity, case.device_id,
                                   case.rules or case.rule, detail)
    session.add(NoticeRow(
        case_id=case.id, tenant=case.tenant, device_id=case.device_id, audience="team",
        kind=kind, customer_id=case.customer_id, channel=push.channel,
        recipient=push.recipient, idempotency_key=f"case-{case.id}-team-{kind}-{event.id}",
        subject=subject, body=body, status="pending", attempts=0, next_attempt_at=0.0,
        created_at=now,
    ))


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


def acknowledge(engine: Engine, tenant: str, case_id: int, by: str, now: float,
                push: Push | None = None) -> CaseState:
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
                _record(session, case, "acknowledged", by, now, push)
            session.commit()
        return CaseState(case_id, "acknowledged", _assignee(session, case_id))


def assign(engine: Engine, tenant: str, case_id: int, assignee: str, by: str,
           now: float, push: Push | None = None) -> CaseState:
    """Give a case to an agent (an empty ``assignee`` unassigns it)."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        # the detail starts with the assignee: _assignee reads it back from there
        _record(session, case, "assigned", f"{assignee} (by {by})", now, push)
        session.commit()
        return CaseState(case_id, case.status, assignee)


def note(engine: Engine, tenant: str, case_id: int, text: str, by: str, now: float,
         push: Push | None = None) -> CaseState:
    """Add an agent's note to the case timeline."""
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        _record(session, case, "note", _line(by, text), now, push)
        session.commit()
        return CaseState(case_id, case.status, _assignee(session, case_id))


def resolve(engine: Engine, tenant: str, case_id: int, by: str, comment: str,
            now: float, push: Push | None = None, *, resolution: Resolution | None = None,
            categories: tuple[str, ...] = (),
            feedback: FeedbackPolicy | None = None) -> CaseState:
    """Resolve a case by hand; the same problem coming back opens (or reopens) a case again.

    With ``resolution`` (checked against the product's fault ``categories``) the outcome is
    stored as a label with the case's evidence window, in the same transaction; with
    ``feedback``, a false alarm also raises the case's rules for the device
    (:mod:`rules.feedback`), each raise a timeline line. A case that resolved itself (its
    alarm cleared) can still be given its outcome, once: most false alarms are over before
    anyone looks, and the rules must learn from them too."""
    if resolution is not None:
        resolution = resolution.checked(categories)
    with Session(engine) as session:
        case = _case(session, tenant, case_id)
        labelled = session.scalar(select(LabelRow.id).where(LabelRow.case_id == case_id)
                                  .limit(1)) is not None
        if case.status == "resolved" and (resolution is None or labelled):
            raise CaseStateError(f"case {case_id} is already resolved")
        kind = "labelled" if case.status == "resolved" else "resolved"
        if kind == "resolved":
            done = session.execute(update(CaseRow).where(
                CaseRow.id == case_id, CaseRow.status != "resolved")
                .values(status="resolved", open_key=None, resolved_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise CaseStateError(f"case {case_id} is already resolved")
        text = comment or "resolved by an agent"
        if resolution is not None:
            code = resolution.outcome + (f" ({resolution.label})" if resolution.label else "")
            text = f"{code}: {comment}" if comment else code
            session.add(LabelRow(
                case_id=case.id, tenant=case.tenant, device_id=case.device_id,
                product=case.product, rules=case.rules or case.rule, outcome=resolution.outcome,
                category=resolution.label, window_start=case.fault_started_at,
                window_end=(case.resolved_at if kind == "labelled" and case.resolved_at
                            else now),
                labelled_by=by, labelled_at=now, comment=comment))
        _record(session, case, kind, _line(by, text), now, push)
        if resolution is not None and resolution.outcome == "false_alarm" and feedback:
            for made in learn_false_alarm(session, case, by, now, feedback):
                session.add(CaseEventRow(case_id=case.id, ts=now, kind="feedback",
                                         detail=made.reason))
        session.commit()
        return CaseState(case_id, "resolved", _assignee(session, case_id))


def labels(engine: Engine, tenant: str, case_id: int | None = None) -> list[LabelRow]:
    """A tenant's resolution labels (of one case, or all), oldest first."""
    query = select(LabelRow).where(LabelRow.tenant == tenant)
    if case_id is not None:
        query = query.where(LabelRow.case_id == case_id)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.order_by(LabelRow.id)))


def product_of(engine: Engine, tenant: str, case_id: int) -> str:
    """The product of a tenant's case (its fault categories apply)."""
    with Session(engine) as session:
        return _case(session, tenant, case_id).product


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
