"""What a customer answers on the case's status page, and what each answer changes.

Every answer is a line on the case's timeline and a team notice in the outbox (same
transaction); the same answer twice (same case, kind and detail) is recorded once. Each kind
changes what happens next:

* ``noted`` ("thanks, noted"): the customer has read it; nothing else changes;
* ``visit`` ("book a visit", with preferred time windows): escalation stops (the visit is the
  next step; :meth:`rules.cases.CaseBook.escalate_due` skips the case);
* ``fine`` ("it's fine / I know why", with an optional reason): escalation stops too, and the
  answer is kept as a label for the detection and rules (``customer_answers``);
* ``call`` ("call me"): the case escalates now (severity one step up) so somebody calls back.

>>> from rules.db import CaseRow, connect
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s:
...     s.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump", rule="leak",
...                   severity="warning", status="open", open_key="acme/hp-1/leak",
...                   fault_started_at=0, opened_at=60, field="t", peak_score=0.9, summary="",
...                   evidence_json="{}"))
...     s.commit()
>>> record_answer(engine, 1, "visit", "Sat 09-12", now=100.0, team=Push("terminal"))
True
>>> record_answer(engine, 1, "visit", "Sat 09-12", now=101.0, team=Push("terminal"))  # again
False
>>> [(a.kind, a.detail) for a in answers(engine, 1)]
[('visit', 'Sat 09-12')]
>>> visit_booked(engine, 1)
True
>>> engine.dispose()
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rules.case_actions import Push
from rules.db import CaseEventRow, CaseRow, CustomerAnswerRow, NoticeRow
from rules.errors import CaseNotFoundError
from rules.messages import update_message

__all__ = ["ANSWER_KINDS", "STOPS_ESCALATION", "AnswerKind", "answers", "record_answer",
           "visit_booked"]

AnswerKind = Literal["noted", "visit", "fine", "call"]
ANSWER_KINDS: tuple[str, ...] = get_args(AnswerKind)
#: answers after which the case no longer escalates by itself
STOPS_ESCALATION: tuple[str, ...] = ("visit", "fine")
_NEXT_SEVERITY = {"info": "warning", "warning": "critical", "critical": "critical"}
#: what the team reads on the timeline and in its notice
_SAYS = {
    "noted": "the customer read the notice (thanks, noted)",
    "visit": "the customer booked a visit; escalation stopped",
    "fine": "the customer says it is fine / knows why; escalation stopped",
    "call": "the customer asks to be called back; escalated",
}
_MAX_DETAIL = 500


def record_answer(engine: Engine, case_id: int, kind: str, detail: str, now: float,
                  team: Push) -> bool:
    """Record the customer's answer; False when the same answer was already recorded."""
    if kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer {kind!r} (one of {', '.join(ANSWER_KINDS)})")
    detail = " ".join(detail.split())[:_MAX_DETAIL]
    key = f"case-{case_id}-{kind}-{hashlib.sha256(detail.encode()).hexdigest()[:16]}"
    try:
        with Session(engine) as session:
            case = session.get(CaseRow, case_id)
            if case is None:
                raise CaseNotFoundError(f"no case {case_id}")
            answer = CustomerAnswerRow(case_id=case_id, kind=kind, detail=detail, ts=now,
                                       answer_key=key)
            session.add(answer)
            session.flush()  # a repeated answer fails here
            line = _SAYS[kind] + (f": {detail}" if detail else "")
            severity = case.severity
            if kind == "call" and case.status != "resolved":
                severity = _NEXT_SEVERITY.get(case.severity, case.severity)
                session.execute(update(CaseRow).where(CaseRow.id == case_id)
                                .values(severity=severity, escalated_at=now))
            session.add(CaseEventRow(case_id=case_id, ts=now, kind="customer answer",
                                     detail=line))
            subject, body = update_message(f"customer answer ({kind})", case_id, severity,
                                           case.device_id, case.rules or case.rule, line)
            session.add(NoticeRow(
                case_id=case_id, tenant=case.tenant, device_id=case.device_id,
                audience="team", kind="answer", customer_id=case.customer_id,
                channel=team.channel, recipient=team.recipient,
                idempotency_key=f"case-{case_id}-team-answer-{answer.id}", subject=subject,
                body=body, status="pending", attempts=0, next_attempt_at=0.0, created_at=now))
            session.commit()
            return True
    except IntegrityError:
        return False


def answers(engine: Engine, case_id: int) -> list[CustomerAnswerRow]:
    """A case's answers, oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(CustomerAnswerRow).where(
            CustomerAnswerRow.case_id == case_id).order_by(CustomerAnswerRow.id)))


def visit_booked(engine: Engine, case_id: int) -> bool:
    """True when the customer booked a visit for the case."""
    with Session(engine) as session:
        return session.scalar(select(CustomerAnswerRow.id).where(
            CustomerAnswerRow.case_id == case_id, CustomerAnswerRow.kind == "visit")
            .limit(1)) is not None
