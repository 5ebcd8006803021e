"""A console on a free 127.0.0.1 port whose customers get status-page links (issue 19).

Cases are opened by the case book itself (``CaseBook.record_alarm``, what the rules pipeline
calls) with the registry below: Kim reads Korean in Asia/Seoul, Ann reads English in
Europe/London. The clock is a list the tests move.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.console import ConsoleContext
from forewarn.console.server import make_server
from forewarn.console.throttle import LoginLimiter
from rules.case_actions import Push
from rules.cases import CaseBook
from rules.db import NoticeRow, connect
from rules.evaluate import Alarm
from rules.model import Rule
from rules.registry import parse_registry
from rules.status_link import StatusLinks

SECRET = "status-secret-for-tests"
#: 2026-12-07 00:00 UTC
T0 = 1796601600.0
REGISTRY = parse_registry("""
tenant: acme
customers:
  - {id: kim, name: 김민준, timezone: Asia/Seoul, language: ko,
     contact: {channel: terminal, address: kim@example.com}}
  - {id: ann, name: Ann Lee, timezone: Europe/London, language: en,
     contact: {channel: terminal, address: ann@example.com}}
devices:
  hp-kim: {customer: kim, product: heat_pump}
  hp-ann: {customer: ann, product: heat_pump}
  hp-kim2: {customer: kim, product: heat_pump}
  hp-ann2: {customer: ann, product: heat_pump}
  hp-ann3: {customer: ann, product: heat_pump}
  hp-ann4: {customer: ann, product: heat_pump}
  hp-kim3: {customer: kim, product: heat_pump}
  hp-kim4: {customer: kim, product: heat_pump}
""")


@dataclass
class StatusConsole:
    """A running console, its case book (same database, same link secret) and clock."""

    url: str
    ctx: ConsoleContext
    book: CaseBook
    now: list[float] = field(default_factory=lambda: [T0])
    token: str = ""

    def open_case(self, device_id: str, predicted_in_s: float | None = 3 * 86400.0) -> int:
        """Open a case on ``device_id`` the way the rules pipeline does; its id."""
        fired = self.now[0]
        alarm = Alarm(Rule(name="refrigerant_leak", score_at_least=0.8, escalate_after=3600.0),
                      "acme", device_id, "heat_pump", fired - 1800.0, fired, "discharge_temp",
                      0.93, 81.5, fields=("discharge_temp", "suction_pressure"),
                      predicted_failure_at=None if predicted_in_s is None
                      else fired + predicted_in_s)
        outcome = self.book.record_alarm(alarm)
        assert outcome.kind == "opened" and outcome.case_id is not None
        return outcome.case_id

    def customer_notice(self, case_id: int) -> NoticeRow | None:
        """The case's customer notice in the outbox."""
        with Session(self.ctx.engine) as session:
            return session.scalar(select(NoticeRow).where(NoticeRow.case_id == case_id,
                                                          NoticeRow.audience == "customer"))

    def link(self, case_id: int) -> str:
        """The status-page link the customer notice carries."""
        notice = self.customer_notice(case_id)
        assert notice is not None
        found = re.search(r"https?://\S+/s/[\w-]+", notice.body)
        assert found, notice.body
        return found.group(0)


@pytest.fixture(scope="module")
def status_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusConsole]:
    """The console with status pages, served by uvicorn on a free port."""
    out: Path = tmp_path_factory.mktemp("status")
    engine = connect(f"sqlite:///{out / 'cases.sqlite'}")
    now = [T0]
    ctx = ConsoleContext(engine=engine, clock=lambda: now[0], registry=REGISTRY,
                         team_push=Push("terminal", "team@example.com"),
                         status_limiter=LoginLimiter(failures=6, window_s=3600.0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    ctx.status_links = StatusLinks(SECRET, url, grace_s=7 * 86400.0, clock=lambda: now[0])
    book = CaseBook(engine, channel="terminal", clock=lambda: now[0], registry=REGISTRY,
                    status_links=StatusLinks(SECRET, url, clock=lambda: now[0]))
    server = make_server(ctx)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20.0
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    try:
        yield StatusConsole(url, ctx, book, now)
    finally:
        server.should_exit = True
        thread.join(timeout=20.0)
        sock.close()
        engine.dispose()
