"""Two dispatcher processes share one outbox on PostgreSQL: every notice reaches the webhook
exactly once (claims are row-locked and conditional, so no notice is taken twice), also when
the channel answers more slowly than a claim's lease lasts (leases are renewed while a send is
in flight)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from rules.db import CaseRow, NoticeRow, connect
from rules.outbox import Outbox
from tests.integration.rules.dispatch_child import SECRET
from tests.servers.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("dispatch_child.py")
BURST = 150


def _add_notices(engine: Engine, n: int) -> None:
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump",
                            rule="r", severity="warning", status="open", open_key="k",
                            fault_started_at=0, opened_at=0, field="a", peak_score=0.9,
                            summary="", evidence_json="{}"))
        session.add_all(NoticeRow(case_id=1, audience="team", channel="webhook",
                                  idempotency_key=f"pg-{i:04d}", subject="s", body="b",
                                  created_at=0.0) for i in range(n))
        session.commit()


def _two_dispatchers(postgres_url: str, n: int, delay_s: float, *lease_s: str) -> None:
    engine = connect(postgres_url)
    try:
        _add_notices(engine, n)
        with WebhookReceiver(secret=SECRET, delay_s=delay_s) as hook:
            children = [subprocess.Popen([sys.executable, str(CHILD), postgres_url, hook.url,
                                          *lease_s],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                        for _ in range(2)]
            for child in children:
                _, err = child.communicate(timeout=120)
                assert child.returncode == 0, err.decode()[-2000:]
            assert len(hook.delivered) == n
            assert set(hook.received.values()) == {1}, "a notice was sent twice"
        assert Outbox(engine, {}, clock=lambda: 0.0).counts() == {"sent": n}
    finally:
        engine.dispose()


def test_two_dispatchers_deliver_each_notice_once(postgres_url: str) -> None:
    _two_dispatchers(postgres_url, BURST, delay_s=0.002)


def test_a_channel_slower_than_the_lease_still_sends_each_notice_once(postgres_url: str) -> None:
    # each dispatcher claims 16 and sends 8 at a time; every answer takes 1.2 s, so a round
    # lasts about 2.4 s against a lease of 0.4 s: without renewal the other dispatcher takes
    # the waiting notices over and sends them a second time
    _two_dispatchers(postgres_url, 32, 1.2, "0.4")
