"""The outbox: retry decisions, dead letters, the attempt log, claims that two dispatchers never
share, and the ``forewarn outbox list/retry`` command."""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from forewarn.commands import outbox as outbox_command
from rules.db import CaseRow, NoticeRow, connect
from rules.errors import NotifyError
from rules.notifiers.base import Notice, Notifier
from rules.outbox import Outbox, queue_service_notice


class Channel:
    """Fails with the scripted errors, then delivers."""

    name = "test"

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.sent: list[str] = []

    async def send(self, notice: Notice) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(notice.idempotency_key)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="t", device_id="d", product="p", rule="r",
                            severity="info", status="open", open_key="k", fault_started_at=0,
                            opened_at=0, field="f", peak_score=1, summary="",
                            evidence_json="{}"))
        session.commit()
    yield engine
    engine.dispose()


def add(engine: Engine, n: int = 1, channel: str = "test", at: float = 0.0) -> None:
    with Session(engine) as session:
        for i in range(n):
            session.add(NoticeRow(case_id=1, audience="team", channel=channel,
                                  idempotency_key=f"{channel}-{at}-{i}", subject=f"s{i}",
                                  body="b", created_at=0.0, next_attempt_at=at))
        session.commit()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(outbox: Outbox, clock: Clock, rounds: int = 20) -> None:
    for _ in range(rounds):
        asyncio.run(outbox.dispatch_once())
        clock.now += 10_000.0


OUTCOMES = [
    pytest.param([], "sent", 1, id="delivered-first-time"),
    pytest.param([NotifyError("busy", retryable=True)] * 2, "sent", 3, id="retried-then-sent"),
    pytest.param([NotifyError("bad address", retryable=False)], "dead", 1,
                 id="not-retryable-dead-at-once"),
    pytest.param([NotifyError("busy")] * 10, "dead", 4, id="dead-after-attempt-limit"),
    pytest.param([RuntimeError("bug in a channel")], "sent", 2, id="channel-bug-is-retried"),
]


@pytest.mark.parametrize(("errors", "status", "attempts"), OUTCOMES)
def test_retry_decisions(engine: Engine, errors: list[BaseException], status: str,
                         attempts: int) -> None:
    add(engine)
    clock = Clock()
    outbox = Outbox(engine, {"test": Channel(*errors)}, clock=clock, max_attempts=4)
    drive(outbox, clock)
    [notice] = outbox.notices()
    assert (notice.status, notice.attempts) == (status, attempts)
    log = outbox.attempts(notice.id)
    assert len(log) == attempts and log[-1].ok is (status == "sent")


def test_missing_channel_is_dead(engine: Engine) -> None:
    add(engine, channel="pager")
    outbox = Outbox(engine, {}, clock=Clock())
    asyncio.run(outbox.dispatch_once())
    [notice] = outbox.notices()
    assert notice.status == "dead" and "pager" in (notice.last_error or "")


def test_full_jitter_backoff_stays_under_the_cap(engine: Engine) -> None:
    add(engine)
    clock = Clock()
    outbox = Outbox(engine, {"test": Channel(*[NotifyError("busy")] * 5)}, clock=clock,
                    base_delay_s=2.0, max_delay_s=5.0, rng=random.Random(1), max_attempts=9)
    for attempt in range(1, 5):
        asyncio.run(outbox.dispatch_once())
        [notice] = outbox.notices()
        delay = notice.next_attempt_at - clock.now
        assert 0.0 <= delay <= min(5.0, 2.0 * 2**attempt)
        clock.now = notice.next_attempt_at


def test_not_yet_due_notice_waits(engine: Engine) -> None:
    add(engine, at=5000.0)  # e.g. the end of the customer's quiet hours
    clock = Clock()
    outbox = Outbox(engine, {"test": Channel()}, clock=clock)
    assert asyncio.run(outbox.dispatch_once()) == 0
    clock.now = 5000.0
    assert asyncio.run(outbox.dispatch_once()) == 1


def test_two_dispatchers_never_claim_the_same_notice(engine: Engine) -> None:
    add(engine, n=30)
    clock = Clock()
    first, second = Channel(), Channel()
    a = Outbox(engine, {"test": first}, clock=clock, lease_s=60.0)
    b = Outbox(engine, {"test": second}, clock=clock, lease_s=60.0)

    async def both() -> None:
        await asyncio.gather(a.dispatch_once(limit=20), b.dispatch_once(limit=20))

    asyncio.run(both())
    asyncio.run(both())
    assert not set(first.sent) & set(second.sent)
    assert len(first.sent) + len(second.sent) == 30


def test_outbox_list_and_retry_command(engine: Engine, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    add(engine, n=2)
    clock = Clock()
    outbox = Outbox(engine, {"test": Channel(NotifyError("mailbox full", retryable=False))},
                    clock=clock)
    asyncio.run(outbox.dispatch_once())
    parser = argparse.ArgumentParser()
    outbox_command.register(parser.add_subparsers())
    url = str(engine.url)

    args = parser.parse_args(["outbox", "--db", url, "list", "--attempts"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "dead 1, sent 1" in out and "mailbox full" in out

    args = parser.parse_args(["outbox", "--db", url, "retry"])
    assert args.func(args) == 0
    assert "1 dead notice back in line" in capsys.readouterr().out
    assert outbox.counts() == {"pending": 1, "sent": 1}
    asyncio.run(Outbox(engine, {"test": Channel()}, clock=clock).dispatch_once())
    assert outbox.counts() == {"sent": 2}


def test_channel_protocol_is_satisfied() -> None:
    channel: Notifier = Channel()
    assert channel.name == "test"


def test_a_dispatcher_that_lost_its_claim_changes_nothing(engine: Engine) -> None:
    # A stalls past its lease without renewing (a frozen process); B takes the notice over
    # and delivers it. When A comes back its channel has refused the notice: A must not mark
    # B's sent notice dead.
    add(engine, n=1)
    clock = Clock()
    release = asyncio.Event()

    class Stalled:
        name = "test"

        async def send(self, notice: Notice) -> None:
            await release.wait()
            raise NotifyError("mailbox unavailable", retryable=False)

    a = Outbox(engine, {"test": Stalled()}, clock=clock, lease_s=60.0, renew_every_s=3600.0)
    b_channel = Channel()
    b = Outbox(engine, {"test": b_channel}, clock=clock, lease_s=60.0)

    async def race() -> None:
        stalled = asyncio.create_task(a.dispatch_once())
        await asyncio.sleep(0)  # A claims and starts its send
        clock.now += 61.0
        assert await b.dispatch_once() == 1
        release.set()
        assert await stalled == 0

    asyncio.run(race())
    assert b_channel.sent and a.lost_claims == 1
    assert b.counts() == {"sent": 1}


def test_leases_are_renewed_while_a_send_is_in_flight(engine: Engine) -> None:
    add(engine, n=1)
    clock = Clock()
    release = asyncio.Event()

    class Slow:
        name = "test"

        async def send(self, notice: Notice) -> None:
            await release.wait()

    a = Outbox(engine, {"test": Slow()}, clock=clock, lease_s=60.0, renew_every_s=0.01)
    b_channel = Channel()
    b = Outbox(engine, {"test": b_channel}, clock=clock, lease_s=60.0)

    async def race() -> None:
        sending = asyncio.create_task(a.dispatch_once())
        await asyncio.sleep(0)
        clock.now += 50.0  # within the first lease: the next renewal runs to 1110
        with Session(engine) as session:
            deadline = asyncio.get_running_loop().time() + 5.0
            while session.scalars(select(NoticeRow.next_attempt_at)).one() < clock.now + 59:
                assert asyncio.get_running_loop().time() < deadline, "lease never renewed"
                await asyncio.sleep(0.01)
                session.expire_all()
        clock.now += 30.0  # past the first lease, within the renewed one
        assert await b.dispatch_once() == 0
        release.set()
        assert await sending == 1

    asyncio.run(race())
    assert not b_channel.sent and a.lost_claims == 0


def test_a_service_notice_without_a_case_is_queued_once_delivered_and_listed(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """Ingest back-pressure notices (issue 23) belong to no case; one key queues one notice."""
    assert queue_service_notice(engine, "test", "backpressure", "[warning] ingest held",
                                "body", "backpressure-S-b-1.000-started", now=5.0)
    assert not queue_service_notice(engine, "test", "backpressure", "[warning] ingest held",
                                    "body", "backpressure-S-b-1.000-started", now=6.0)
    channel = Channel()
    assert asyncio.run(Outbox(engine, {"test": channel}, clock=Clock()).dispatch_once()) == 1
    assert channel.sent == ["backpressure-S-b-1.000-started"]
    parser = argparse.ArgumentParser()
    outbox_command.register(parser.add_subparsers())
    args = parser.parse_args(["outbox", "--db", str(engine.url), "list"])
    assert args.func(args) == 0
    assert "case -     " in capsys.readouterr().out
