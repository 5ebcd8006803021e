"""E-mail replies from customers, filed on the case they quote.

A reply is *verified* when it quotes a case (``FW-<id>`` in the subject, else in the text) and
comes from the address that case's customer notice went to; it becomes a ``customer reply``
line on the timeline and a team notice (``kind = "reply"``). Anything else returns None: the
caller keeps it (``forewarn inbox`` makes it a dead letter, counted by reason).

>>> from rules.db import CaseRow, NoticeRow, connect
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s:
...     s.add(CaseRow(id=3, tenant="acme", device_id="hp-1", product="heat_pump", rule="leak",
...                   severity="warning", status="open", open_key="k", fault_started_at=0,
...                   opened_at=60, field="t", peak_score=0.9, summary="", evidence_json="{}"))
...     s.add(NoticeRow(case_id=3, audience="customer", channel="email",
...                     recipient="kim@example.com", idempotency_key="c3", subject="",
...                     body="", created_at=60))
...     s.commit()
>>> file_reply(engine, "Kim@Example.com", "Re: FW-3", "Saturday works", 100.0, Push("email"))
3
>>> file_reply(engine, "mallory@example.com", "Re: FW-3", "hi", 100.0, Push("email")) is None
True
>>> engine.dispose()
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from rules.case_actions import Push
from rules.db import CaseEventRow, CaseRow, NoticeRow
from rules.messages import update_message

__all__ = ["file_reply", "quoted_cases"]

_REF = re.compile(r"\bFW-(\d{1,12})\b")
_MAX_TEXT = 2000


def quoted_cases(subject: str, text: str) -> list[int]:
    """The case ids a reply quotes: the subject's first, then the text's."""
    seen: list[int] = []
    for found in (*_REF.findall(subject), *_REF.findall(text)):
        if int(found) not in seen:
            seen.append(int(found))
    return seen


def file_reply(engine: Engine, sender: str, subject: str, text: str, now: float,
               team: Push) -> int | None:
    """File a verified reply on its case; its id, or None when it cannot be verified."""
    sender = sender.strip().lower()
    if not sender:
        return None
    with Session(engine) as session:
        for case_id in quoted_cases(subject, text):
            case = session.get(CaseRow, case_id)
            if case is None:
                continue
            told = session.scalar(select(NoticeRow.id).where(
                NoticeRow.case_id == case_id, NoticeRow.audience == "customer",
                func.lower(NoticeRow.recipient) == sender).limit(1))
            if told is None:
                continue
            line = " ".join(text.split())[:_MAX_TEXT] or subject
            detail = f"e-mail from {sender}: {line}"
            if session.scalar(select(CaseEventRow.id).where(  # the same mail delivered twice
                    CaseEventRow.case_id == case_id, CaseEventRow.kind == "customer reply",
                    CaseEventRow.detail == detail).limit(1)) is not None:
                return case_id
            event = CaseEventRow(case_id=case_id, ts=now, kind="customer reply", detail=detail)
            session.add(event)
            session.flush()
            title, body = update_message("customer reply", case_id, case.severity,
                                         case.device_id, case.rules or case.rule, event.detail)
            session.add(NoticeRow(
                case_id=case_id, tenant=case.tenant, device_id=case.device_id,
                audience="team", kind="reply", customer_id=case.customer_id,
                channel=team.channel, recipient=team.recipient,
                idempotency_key=f"case-{case_id}-team-reply-{event.id}", subject=title,
                body=body, status="pending", attempts=0, next_attempt_at=0.0, created_at=now))
            session.commit()
            return case_id
    return None
