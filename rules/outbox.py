"""The outbox dispatcher: delivers pending notices, retries with full-jitter backoff, gives up
to a dead state after ``max_attempts``. Every attempt is recorded on the notice row.

>>> import asyncio
>>> from rules.db import connect
>>> class Flaky:
...     name = "flaky"
...     def __init__(self): self.calls = 0
...     async def send(self, notice):
...         self.calls += 1
...         if self.calls == 1:
...             raise NotifyError("gateway busy", retryable=True)
>>> from rules.db import NoticeRow, CaseRow
>>> from sqlalchemy.orm import Session
>>> engine = connect("sqlite://")
>>> with Session(engine) as s:
...     s.add(CaseRow(id=1, tenant="t", device_id="d", product="p", rule="r", severity="info",
...                   status="open", open_key="k", fault_started_at=0, opened_at=0, field="f",
...                   peak_score=1, summary="", evidence_json="{}"))
...     s.add(NoticeRow(case_id=1, audience="team", channel="flaky", idempotency_key="k1",
...                     subject="s", body="b", created_at=0.0))
...     s.commit()
>>> now = [0.0]
>>> outbox = Outbox(engine, {"flaky": Flaky()}, clock=lambda: now[0], base_delay_s=1.0)
>>> asyncio.run(outbox.dispatch_once()), outbox.counts()
(0, {'pending': 1})
>>> now[0] = 100.0
>>> asyncio.run(outbox.dispatch_once()), outbox.counts()
(1, {'sent': 1})
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Literal, cast

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from rules.db import NoticeRow
from rules.errors import NotifyError
from rules.notifiers.base import Notice, Notifier

__all__ = ["Outbox"]


class Outbox:
    """Reads pending notices and hands them to their channel."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Notifier],
        clock: Callable[[], float],
        max_attempts: int = 8,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.rng = rng or random.Random()

    async def dispatch_once(self, limit: int = 100) -> int:
        """Try every notice that is due; return how many were delivered."""
        delivered = 0
        now = self.clock()
        with Session(self.engine) as session:
            due = session.scalars(
                select(NoticeRow)
                .where(NoticeRow.status == "pending", NoticeRow.next_attempt_at <= now)
                .order_by(NoticeRow.id)
                .limit(limit)
            ).all()
            for row in due:
                channel = self.channels.get(row.channel)
                row.attempts += 1
                try:
                    if channel is None:
                        raise NotifyError(f"no channel named {row.channel!r}", retryable=False)
                    await channel.send(Notice(
                        idempotency_key=row.idempotency_key,
                        audience=cast(Literal["customer", "team"], row.audience),
                        tenant=row.tenant, device_id=row.device_id, case_id=row.case_id,
                        subject=row.subject, body=row.body,
                    ))
                except NotifyError as exc:
                    row.last_error = exc.reason
                    if not exc.retryable or row.attempts >= self.max_attempts:
                        row.status = "dead"
                    else:
                        cap = min(self.max_delay_s, self.base_delay_s * 2**row.attempts)
                        row.next_attempt_at = now + self.rng.uniform(0.0, cap)
                else:
                    row.status = "sent"
                    row.sent_at = self.clock()
                    delivered += 1
                session.commit()  # one notice at a time: a crash repeats at most one send
        return delivered

    def counts(self) -> dict[str, int]:
        """Notices by status."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(NoticeRow.status, func.count()).group_by(NoticeRow.status)
            ).all()
        return {status: int(n) for status, n in rows}

    def pending(self) -> int:
        """Notices not yet delivered nor dead."""
        return self.counts().get("pending", 0)
