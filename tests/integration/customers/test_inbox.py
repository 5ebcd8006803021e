"""``forewarn inbox``'s receiver over real SMTP (aiosmtpd on a free port, smtplib sending): a
reply quoting the case from the notified address lands on its timeline and goes to the team;
a reply from anyone else is kept as a dead letter and counted."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.dead_letter import DeadLetterStore
from forewarn.inbox import UNFILED, ReplyHandler
from forewarn.ports import free_port
from rules.case_actions import Push
from rules.db import NoticeRow
from tests.integration.customers.conftest import StatusConsole

pytestmark = pytest.mark.integration


@pytest.fixture
def inbox(status_console: StatusConsole) -> Iterator[tuple[int, ReplyHandler]]:
    handler = ReplyHandler(status_console.ctx.engine, Push("terminal", "team@example.com"),
                           clock=lambda: status_console.now[0])
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def _send(port: int, sender: str, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(message)


def test_a_reply_from_the_customer_lands_on_the_timeline(
        status_console: StatusConsole, inbox: tuple[int, ReplyHandler]) -> None:
    port, handler = inbox
    sc = status_console
    case_id = sc.open_case("hp-ann")
    _send(port, "Ann Lee <ann@example.com>", f"Re: FW-{case_id} heat pump",
          "Saturday morning suits me.\n\n> quoted notice")
    _send(port, "Ann Lee <ann@example.com>", f"Re: FW-{case_id} heat pump",
          "Saturday morning suits me.\n\n> quoted notice")  # delivered twice
    _send(port, "mallory@example.net", f"Re: FW-{case_id}", "cancel the visit")
    _send(port, "ann@example.com", "hello", "no case quoted")
    assert (handler.filed, handler.unfiled) == (2, 2)
    lines = [e.detail for e in sc.book.timeline(case_id) if e.kind == "customer reply"]
    assert lines == ["e-mail from ann@example.com: Saturday morning suits me. > quoted notice"]
    with Session(sc.ctx.engine) as session:
        team = session.scalars(select(NoticeRow).where(NoticeRow.case_id == case_id,
                                                       NoticeRow.kind == "reply")).all()
    assert len(team) == 1 and team[0].recipient == "team@example.com"
    store = DeadLetterStore(sc.ctx.engine)
    assert store.counts()[UNFILED] == 2
    assert {d.topic for d in store.letters(UNFILED)} == {"mail from mallory@example.net",
                                                         "mail from ann@example.com"}
