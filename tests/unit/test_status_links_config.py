"""``[serve] public_url`` and a secret that survives restarts make the link core writes into a
customer notice one that serve's status page accepts (issue 19.1)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.console import ConsoleContext
from forewarn.console.server import console_context
from forewarn.service import Service
from forewarn.settings import load_settings
from rules.db import NoticeRow
from rules.evaluate import Alarm
from rules.model import Rule


def _settings(tmp_path: Path, serve: str) -> Path:
    path = tmp_path / "forewarn.toml"
    path.write_text(f'[cases]\nurl = "sqlite:///{tmp_path}/cases.sqlite"\n[serve]\n{serve}\n')
    return path


def _link(tmp_path: Path, serve: str) -> tuple[str | None, ConsoleContext]:
    settings = load_settings(_settings(tmp_path, serve))
    service = Service(settings, clock=lambda: 1_800_000_000.0)
    engine = service.connect_cases()
    book = service.case_book(engine)
    alarm = Alarm(Rule(name="leak", score_at_least=0.8), "acme", "hp-1", "heat_pump",
                  1_799_999_000.0, 1_800_000_000.0, "discharge_temp", 0.9, 80.0)
    assert book.record_alarm(alarm).kind == "opened"
    with Session(engine) as session:
        body = session.scalar(select(NoticeRow.body).where(NoticeRow.audience == "customer"))
    engine.dispose()
    found = re.search(r"https://support\.example\.com/s/([\w-]+)", body or "")
    ctx = console_context(settings, clock=lambda: 1_800_000_100.0)
    ctx.engine.dispose()
    return (found.group(1) if found else None), ctx


def test_core_signs_what_serve_accepts_across_restarts(tmp_path: Path) -> None:
    token, ctx = _link(tmp_path, 'public_url = "https://support.example.com"\n'
                                 'session_secret = "kept-in-the-config"')
    assert token is not None
    links = ctx.status_links
    assert links is not None and links.case_id(token) == 1


def test_without_a_public_url_notices_carry_no_link(tmp_path: Path) -> None:
    token, ctx = _link(tmp_path, 'session_secret = "kept-in-the-config"')
    assert token is None and ctx.status_links is None
