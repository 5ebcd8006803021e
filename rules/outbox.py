"""The outbox dispatcher: delivers pending notices, retries with full-jitter backoff, gives up
to a dead state after ``max_attempts``. Every attempt is recorded (``notice_attempts``).

A notice is *claimed* before it is sent: its attempt is counted and it is hidden from other
dispatchers for ``lease_s`` (a conditional UPDATE, so two dispatchers never claim the same
notice; on PostgreSQL also ``FOR UPDATE SKIP LOCKED``). While a round's sends are in flight the
dispatcher renews the leases it holds every ``renew_every_s``, so a channel slower than the
lease (a webhook timing out after 10 s, a round of 100 notices sent 16 at a time) does not let
a second dispatcher take the notices over and send them again. Finishing is conditional on
still holding the claim (the attempt count the claim set): a dispatcher that lost its claim
(it stalled past its lease and another took over) records its attempt but changes nothing
else. A dispatcher killed mid-send leaves the notice claimed; once the lease ends it is sent
again, with the same idempotency key, so the receiver can drop the repeat.

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
>>> [(a.ok, a.error) for a in outbox.attempts(1)]
[(False, 'gateway busy'), (True, None)]
>>> engine.dispose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import Engine, Update, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edge.backoff import full_jitter
from rules.db import AttemptRow, NoticeRow
from rules.errors import NotifyError
from rules.notifiers.base import Notice, Notifier

__all__ = ["Outbox", "queue_service_notice"]

_log = logging.getLogger(__name__)


def queue_service_notice(engine: Engine, channel: str, kind: str, subject: str, body: str,
                         idempotency_key: str, now: float, recipient: str = "") -> bool:
    """Queue a team notice about the service itself (no case), once per ``idempotency_key``.

    Returns False when a notice with that key is already queued (another process, or this
    one before a restart, reported the same thing).
    """
    with Session(engine) as session:
        session.add(NoticeRow(
            case_id=None, audience="team", kind=kind, channel=channel, recipient=recipient,
            idempotency_key=idempotency_key, subject=subject, body=body, status="pending",
            attempts=0, next_attempt_at=0.0, created_at=now))
        try:
            session.commit()
        except IntegrityError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Claim:
    notice_id: int
    attempts: int
    channel: str
    notice: Notice


class Outbox:
    """Reads due notices and hands them to their channel, ``concurrency`` at a time."""

    def __init__(
        self,
        engine: Engine,
        channels: Mapping[str, Notifier],
        clock: Callable[[], float],
        max_attempts: int = 8,
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
        rng: random.Random | None = None,
        concurrency: int = 16,
        lease_s: float = 60.0,
        renew_every_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.rng = rng or random.Random()
        self.concurrency = concurrency
        self.lease_s = lease_s
        #: wall seconds between lease renewals while sends are in flight (the clock is the
        #: wall clock in the services; a third of the lease leaves two renewals of slack)
        self.renew_every_s = lease_s / 3.0 if renew_every_s is None else renew_every_s
        #: claims this dispatcher lost to another before it could finish them
        self.lost_claims = 0

    async def dispatch_once(self, limit: int = 100) -> int:
        """Try every notice that is due (up to ``limit``); return how many were delivered."""
        claims = self._claim(self.clock(), limit)
        if not claims:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def deliver(claim: _Claim) -> NotifyError | None:
            async with gate:
                channel = self.channels.get(claim.channel)
                try:
                    if channel is None:
                        raise NotifyError(f"no channel named {claim.channel!r}", retryable=False)
                    await channel.send(claim.notice)
                except NotifyError as exc:
                    return exc
                except Exception as exc:  # a notifier bug must not stop the other notices
                    _log.exception("channel %s raised", claim.channel)
                    return NotifyError(f"{type(exc).__name__}: {exc}", retryable=True)
                return None

        renewer = asyncio.create_task(self._keep_leases(claims))
        try:
            errors = await asyncio.gather(*(deliver(c) for c in claims))
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        # one transaction for the round: a crash before it repeats this round's sends once
        # (each was claimed, so after the lease it goes again with the same idempotency key)
        self._finish(list(zip(claims, errors, strict=True)))
        return sum(error is None for error in errors)

    async def run(self, stop: asyncio.Event, idle_s: float = 0.05) -> None:
        """Dispatch until ``stop`` is set, pausing ``idle_s`` when nothing was due."""
        while not stop.is_set():
            if await self.dispatch_once() == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)

    def _claim(self, now: float, limit: int) -> list[_Claim]:
        claims: list[_Claim] = []
        with Session(self.engine) as session:
            # oldest first: a notice of a killed dispatcher goes again as soon as its lease
            # ends, before newer ones
            query = (select(NoticeRow)
                     .where(NoticeRow.status == "pending", NoticeRow.next_attempt_at <= now)
                     .order_by(NoticeRow.id).limit(limit))
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for row in session.scalars(query).all():
                done = session.execute(
                    update(NoticeRow)
                    .where(NoticeRow.id == row.id, NoticeRow.status == "pending",
                           NoticeRow.attempts == row.attempts)
                    .values(attempts=row.attempts + 1, next_attempt_at=now + self.lease_s)
                    .execution_options(synchronize_session=False))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another dispatcher took it
                claims.append(_Claim(row.id, row.attempts + 1, row.channel, Notice(
                    idempotency_key=row.idempotency_key,
                    audience=cast(Literal["customer", "team"], row.audience),
                    tenant=row.tenant, device_id=row.device_id, case_id=row.case_id,
                    subject=row.subject, body=row.body, recipient=row.recipient or "",
                    kind=row.kind or "opened",
                )))
            session.commit()
        return claims

    async def _keep_leases(self, claims: Sequence[_Claim]) -> None:
        """Renew the leases of ``claims`` every ``renew_every_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                self._renew(claims, self.clock())
            except Exception:  # the database is away: the lease may lapse, finishing is safe
                _log.warning("outbox: could not renew %d leases", len(claims), exc_info=True)

    def _renew(self, claims: Sequence[_Claim], now: float) -> None:
        with Session(self.engine) as session:
            for claim in claims:
                session.execute(self._held(claim).values(next_attempt_at=now + self.lease_s)
                                .execution_options(synchronize_session=False))
            session.commit()

    @staticmethod
    def _held(claim: _Claim) -> Update:
        """An UPDATE of ``claim``'s notice that matches only while the claim is still ours."""
        return update(NoticeRow).where(NoticeRow.id == claim.notice_id,
                                       NoticeRow.status == "pending",
                                       NoticeRow.attempts == claim.attempts)

    def _finish(self, results: list[tuple[_Claim, NotifyError | None]]) -> None:
        now = self.clock()
        with Session(self.engine) as session:
            for claim, error in results:
                session.add(AttemptRow(notice_id=claim.notice_id, ts=now, ok=error is None,
                                       error=None if error is None else error.reason))
                values: dict[str, object]
                if error is None:
                    values = {"status": "sent", "sent_at": now, "last_error": None}
                elif not error.retryable or claim.attempts >= self.max_attempts:
                    values = {"status": "dead", "last_error": error.reason}
                else:
                    delay = full_jitter(claim.attempts, self.base_delay_s, self.max_delay_s,
                                        self.rng)
                    values = {"next_attempt_at": now + delay,
                              "last_error": error.reason}
                done = session.execute(self._held(claim).values(**values)
                                       .execution_options(synchronize_session=False))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    self.lost_claims += 1
                    _log.warning("outbox: notice %d was taken over by another dispatcher "
                                 "before this one finished it", claim.notice_id)
            session.commit()

    # -- visibility --------------------------------------------------------------------------

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

    def notices(self, status: str | None = None, limit: int = 50) -> list[NoticeRow]:
        """The newest notices (of one status), newest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(NoticeRow).order_by(NoticeRow.id.desc()).limit(limit)
            if status is not None:
                query = query.where(NoticeRow.status == status)
            return list(session.scalars(query))

    def attempts(self, notice_id: int) -> list[AttemptRow]:
        """Every delivery attempt of one notice, oldest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(AttemptRow).where(
                AttemptRow.notice_id == notice_id).order_by(AttemptRow.id)))

    def retry(self, notice_ids: Sequence[int] | None = None) -> int:
        """Put dead notices (all, or these) back in line with fresh attempts; return how many."""
        with Session(self.engine) as session:
            stmt = update(NoticeRow).where(NoticeRow.status == "dead")
            if notice_ids is not None:
                stmt = stmt.where(NoticeRow.id.in_(list(notice_ids)))
            # due at once, whatever clock the dispatcher runs on
            done = session.execute(stmt.values(status="pending", attempts=0,
                                               next_attempt_at=0.0))
            session.commit()
            return int(done.rowcount)  # type: ignore[attr-defined]
