"""Every channel against a real local server: the signed webhook, SMTP (aiosmtpd) and Apprise
(its ``json://`` URL posting to the local receiver), through the outbox's retry decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from rules.db import CaseRow, NoticeRow, connect
from rules.notifiers.apprise import AppriseNotifier
from rules.notifiers.base import Notifier
from rules.notifiers.smtp import SmtpNotifier
from rules.notifiers.webhook import WebhookNotifier
from rules.outbox import Outbox
from tests.servers.smtp import SmtpServer
from tests.servers.webhook import WebhookReceiver

pytestmark = pytest.mark.integration
SECRET = b"s3cret"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump",
                            rule="r", severity="warning", status="open", open_key="k",
                            fault_started_at=0, opened_at=0, field="a", peak_score=0.9,
                            summary="", evidence_json="{}"))
        session.commit()
    yield engine
    engine.dispose()


def queue(engine: Engine, channel: str, n: int = 1, recipient: str = "") -> None:
    with Session(engine) as session:
        for i in range(n):
            session.add(NoticeRow(case_id=1, tenant="acme", device_id="hp-1",
                                  audience="customer", channel=channel, recipient=recipient,
                                  idempotency_key=f"case-1-{channel}-{i}",
                                  subject="We noticed something", body=f"Body {i} — 히트펌프",
                                  created_at=0.0))
        session.commit()


async def drain(outbox: Outbox, rounds: int = 50) -> None:
    for _ in range(rounds):
        await outbox.dispatch_once()
        if outbox.pending() == 0:
            return


def test_webhook_signed_with_idempotency_key_and_retried(engine: Engine) -> None:
    queue(engine, "webhook", n=3)
    with WebhookReceiver(secret=SECRET, fail_first=2) as hook:

        async def go() -> None:
            async with WebhookNotifier(hook.url, SECRET) as channel:
                outbox = Outbox(engine, {"webhook": channel}, clock=lambda: 1e12,
                                base_delay_s=0.0)
                await drain(outbox)

        asyncio.run(go())
        assert sorted(hook.delivered) == [f"case-1-webhook-{i}" for i in range(3)]
        assert hook.bad_signatures == 0
        assert hook.delivered["case-1-webhook-0"]["body"] == "Body 0 — 히트펌프"
    outbox = Outbox(engine, {}, clock=lambda: 0.0)
    assert outbox.counts() == {"sent": 3}
    attempts = [a.ok for n in outbox.notices() for a in outbox.attempts(n.id)]
    assert attempts.count(False) == 2 and attempts.count(True) == 3


def test_webhook_wrong_secret_is_refused_and_dead(engine: Engine) -> None:
    queue(engine, "webhook")
    with WebhookReceiver(secret=SECRET) as hook:

        async def go() -> None:
            async with WebhookNotifier(hook.url, b"wrong") as channel:
                await drain(Outbox(engine, {"webhook": channel}, clock=lambda: 1e12))

        asyncio.run(go())
        assert hook.bad_signatures == 1 and not hook.delivered
    [notice] = Outbox(engine, {}, clock=lambda: 0.0).notices()
    assert notice.status == "dead" and "401" in (notice.last_error or "")


def test_webhook_unreachable_is_retryable(engine: Engine) -> None:
    queue(engine, "webhook")
    with WebhookReceiver() as hook:
        url = hook.url
    # the server is gone: connection refused, retried until the attempt limit

    async def go() -> None:
        async with WebhookNotifier(url, SECRET) as channel:
            await drain(Outbox(engine, {"webhook": channel}, clock=lambda: 1e12,
                               base_delay_s=0.0, max_attempts=3))

    asyncio.run(go())
    [notice] = Outbox(engine, {}, clock=lambda: 0.0).notices()
    assert (notice.status, notice.attempts) == ("dead", 3)


def test_smtp_delivers_with_idempotency_headers(engine: Engine) -> None:
    queue(engine, "email", n=2, recipient="kim@example.com")
    with SmtpServer() as smtp:
        channel = SmtpNotifier(smtp.host, smtp.port, sender="support@example.com", tls="none")
        asyncio.run(drain(Outbox(engine, {"email": channel}, clock=lambda: 1e12)))
        assert smtp.wait_for(2, timeout_s=10)
        # the outbox sends concurrently: find the first notice's mail whatever order they came in
        keys = sorted(m["X-Forewarn-Idempotency-Key"] for m in smtp.messages)
        assert keys == ["case-1-email-0", "case-1-email-1"]
        first = next(m for m in smtp.messages
                     if m["X-Forewarn-Idempotency-Key"] == "case-1-email-0")
        assert first["To"] == "kim@example.com"
        assert first["X-Forewarn-Idempotency-Key"] == "case-1-email-0"
        assert first["Message-ID"] == "<case-1-email-0@forewarn.local>"
        assert "히트펌프" in first.get_content()


def test_smtp_refused_recipient_is_dead_at_once(engine: Engine) -> None:
    queue(engine, "email", recipient="nobody@example.com")
    with SmtpServer(refuse=True) as smtp:
        channel = SmtpNotifier(smtp.host, smtp.port, sender="support@example.com", tls="none")
        asyncio.run(drain(Outbox(engine, {"email": channel}, clock=lambda: 1e12)))
    [notice] = Outbox(engine, {}, clock=lambda: 0.0).notices()
    assert (notice.status, notice.attempts) == ("dead", 1)


def test_apprise_json_url_reaches_the_receiver(engine: Engine) -> None:
    with WebhookReceiver() as hook:
        queue(engine, "apprise", recipient=f"json://{hook.host}:{hook.port}/hook")
        channels: dict[str, Notifier] = {"apprise": AppriseNotifier()}
        asyncio.run(drain(Outbox(engine, channels, clock=lambda: 1e12)))
        assert hook.wait_for(1, timeout_s=10)
        [payload] = hook.delivered.values()
        assert payload["title"] == "We noticed something"
        assert payload["message"].startswith("Body 0")
    assert Outbox(engine, {}, clock=lambda: 0.0).counts() == {"sent": 1}
