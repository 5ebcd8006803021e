"""Agents' actions reach a helpdesk: queued in the outbox as team notices, delivered by the
signed webhook channel, and the receiver can check the signature (docs/helpdesk.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.case_actions import Push
from rules.db import CaseRow, NoticeRow
from rules.notifiers.webhook import WebhookNotifier, verify_signature
from rules.outbox import Outbox
from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration

SECRET = b"helpdesk-shared-secret"
HOOK = "https://helpdesk.example/forewarn"


@pytest.fixture
def helpdesk(console: ConsoleUnderTest) -> Iterator[None]:
    """The console pushes agents' actions to the ``webhook`` channel while the test runs."""
    console.ctx.helpdesk = Push("webhook", HOOK)
    try:
        yield
    finally:
        console.ctx.helpdesk = None


def _deliver(console: ConsoleUnderTest, case_id: int) -> list[httpx.Request]:
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(202)

    async def run() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
        async with WebhookNotifier(HOOK, SECRET, client=client) as hook:
            outbox = Outbox(console.ctx.engine, {"webhook": hook}, clock=time.time)
            await outbox.dispatch_once()
        await client.aclose()

    asyncio.run(run())
    return [r for r in received if json.loads(r.content)["case_id"] == case_id]


def test_acknowledge_and_note_go_to_the_helpdesk_signed(console: ConsoleUnderTest,
                                                        helpdesk: None) -> None:
    with Session(console.ctx.engine) as session:
        case = CaseRow(tenant="acme", device_id="hp-helpdesk", product="heat_pump",
                       rule="heat_pump_refrigerant_circuit", severity="warning", status="open",
                       open_key=f"helpdesk-{time.monotonic_ns()}", fault_started_at=0.0,
                       opened_at=60.0, field="discharge_temp", peak_score=0.9,
                       summary="discharge_temp anomalous", evidence_json="{}")
        session.add(case)
        session.commit()
        case_id = case.id
    with console.client("acme", "agent") as agent:
        assert agent.post(f"/api/v1/cases/{case_id}/acknowledge").status_code == 200
        assert agent.post(f"/api/v1/cases/{case_id}/notes",
                          json={"text": "customer called back"}).status_code == 201
    with Session(console.ctx.engine) as session:
        queued = session.scalars(select(NoticeRow).where(NoticeRow.case_id == case_id)).all()
        assert [(n.kind, n.channel, n.recipient) for n in queued] == [
            ("acknowledged", "webhook", HOOK), ("note", "webhook", HOOK)]

    posts = _deliver(console, case_id)
    assert [str(p.url) for p in posts] == [HOOK, HOOK]
    payloads = [json.loads(p.content) for p in posts]
    assert [p["kind"] for p in payloads] == ["acknowledged", "note"]
    assert payloads[0]["tenant"] == "acme" and payloads[0]["audience"] == "team"
    assert payloads[0]["subject"] == f"[warning] FW-{case_id} hp-helpdesk: case acknowledged"
    assert "customer called back" in payloads[1]["body"]
    for post in posts:
        assert post.headers["Idempotency-Key"].startswith(f"case-{case_id}-team-")
        assert verify_signature(SECRET, post.headers["X-Forewarn-Timestamp"], post.content,
                                post.headers["X-Forewarn-Signature"])
