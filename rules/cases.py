"""Opening support cases, idempotently, with their notices in the same transaction.

>>> from rules.db import connect
>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> book = CaseBook(connect("sqlite://"), channel="terminal", clock=lambda: 0.0)
>>> alarm = Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump",
...               0.0, 600.0, "discharge_temp", 0.93, 81.5)
>>> case = book.open_case(alarm)
>>> case is not None and book.open_case(alarm) is None  # the same alarm never opens two cases
True
>>> [(c.device_id, c.rule) for c in book.cases()]
[('hp-1', 'r')]
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rules.db import CaseRow, NoticeRow
from rules.evaluate import Alarm
from rules.messages import customer_message, team_message

__all__ = ["CaseBook"]


class CaseBook:
    """Opens cases keyed by tenant/device/rule and queues their notices in the outbox."""

    def __init__(self, engine: Engine, channel: str, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.channel = channel
        self.clock = clock

    def open_case(self, alarm: Alarm) -> CaseRow | None:
        """Open a case for ``alarm``; None when that alarm already has an open case."""
        open_key = f"{alarm.tenant}/{alarm.device_id}/{alarm.rule.name}"
        evidence = {
            "field": alarm.field,
            "value": alarm.value,
            "peak_score": alarm.peak_score,
            "events": [
                {"ts": e.ts, "field": e.field, "detector": e.detector, "score": e.score,
                 "value": e.value, "explanation": e.explanation,
                 "time_to_limit_s": e.time_to_limit_s}
                for e in alarm.events
            ],
        }
        with Session(self.engine, expire_on_commit=False) as session:
            if session.scalar(select(CaseRow.id).where(CaseRow.open_key == open_key)) is not None:
                return None
            case = CaseRow(
                tenant=alarm.tenant, device_id=alarm.device_id, product=alarm.product,
                rule=alarm.rule.name, severity=alarm.rule.severity, status="open",
                open_key=open_key, fault_started_at=alarm.started_at, opened_at=alarm.fired_at,
                field=alarm.field, peak_score=alarm.peak_score,
                summary=f"{alarm.field} anomalous on {alarm.device_id}",
                evidence_json=json.dumps(evidence),
            )
            session.add(case)
            try:
                session.flush()  # assigns case.id; a concurrent duplicate fails here
                audiences = ["team", "customer"] if alarm.rule.notify_customer else ["team"]
                for audience in audiences:
                    render = customer_message if audience == "customer" else team_message
                    subject, body = render(alarm, case.id)
                    session.add(NoticeRow(
                        case_id=case.id, tenant=alarm.tenant, device_id=alarm.device_id,
                        audience=audience, channel=self.channel,
                        idempotency_key=f"case-{case.id}-{audience}-opened",
                        subject=subject, body=body, status="pending", attempts=0,
                        next_attempt_at=0.0, created_at=self.clock(),
                    ))
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
            return case

    def cases(self) -> list[CaseRow]:
        """Every case, oldest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(CaseRow).order_by(CaseRow.id)))
