"""A Korean customer in a real browser (Debian's chromium, driven by Playwright) opens the link
of their notice, reads the case in Korean in Asia/Seoul time, and books a visit; the case's
timeline and the team's outbox show it (issue 19 acceptance).

Screenshots of the page (Korean and English, phone and desktop width) go to ``docs/img/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import NoticeRow
from tests.integration.customers.conftest import StatusConsole

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "img"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

if not Path(CHROMIUM).exists():
    pytest.skip("chromium not installed (Debian package chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless chromium for the module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_a_korean_customer_books_a_visit_from_the_notice(status_console: StatusConsole,
                                                         browser: Browser) -> None:
    sc = status_console
    case_id = sc.open_case("hp-kim3")
    notice = sc.customer_notice(case_id)
    assert notice is not None and notice.recipient == "kim@example.com"
    assert "진행 상황 확인" in notice.body  # the notice itself is Korean and carries the link
    link = sc.link(case_id)
    SHOTS.mkdir(parents=True, exist_ok=True)

    # the browser is set to UTC on purpose: the page must show Seoul time from the registry
    context = browser.new_context(viewport=PHONE, timezone_id="UTC", locale="ko-KR",
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    p.goto(link)
    expect(p.locator("html")).to_have_attribute("lang", "ko")
    expect(p.locator("h1")).to_have_text("고객님의 히트펌프 (hp-kim3)")
    expect(p.get_by_test_id("state")).to_have_text("초기 이상 징후를 발견하여 살펴보고 있습니다")
    # the fault started 2026-12-06 23:30 UTC = 2026-12-07 08:30 in Seoul
    expect(p.get_by_test_id("noticed")).to_contain_text("2026-12-07 08:30 KST")
    expect(p.get_by_test_id("predicted")).to_contain_text("2026-12-10 09:00 KST")
    expect(p.get_by_text(f"사례 FW-{case_id}")).to_be_visible()
    box = p.get_by_test_id("answer-visit").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]  # fits a phone, no side scroll
    assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.screenshot(path=str(SHOTS / "status_ko_phone.png"), full_page=True)

    p.get_by_label("토요일").check()
    p.get_by_label("평일 저녁 (17–20시)").check()
    p.get_by_test_id("answer-visit").click()
    expect(p.get_by_test_id("thanks")).to_be_visible()
    expect(p.get_by_test_id("state")).to_have_text("방문 일정을 잡고 있습니다")
    expect(p.get_by_test_id("given")).to_contain_text("방문 예약됨: 평일 저녁 (17–20시), 토요일")
    p.screenshot(path=str(SHOTS / "status_ko_phone_booked.png"), full_page=True)
    p.set_viewport_size(DESKTOP)
    p.screenshot(path=str(SHOTS / "status_ko_desktop.png"), full_page=True)
    assert problems == []
    context.close()

    # the case timeline and the team's outbox have it
    lines = [(e.kind, e.detail) for e in sc.book.timeline(case_id)]
    assert ("customer answer", "the customer booked a visit; escalation stopped: "
            "weekday-evening, saturday") in lines
    with Session(sc.ctx.engine) as session:
        team = session.scalars(select(NoticeRow).where(
            NoticeRow.case_id == case_id, NoticeRow.audience == "team",
            NoticeRow.kind == "answer")).all()
    assert len(team) == 1 and f"FW-{case_id}" in team[0].subject
    # and the team's console shows it on the case (the agents' API)
    token = sc.ctx.tokens.create("acme", "viewer", "support").token
    detail = httpx.get(f"{sc.url}/api/v1/cases/{case_id}",
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert any(e["kind"] == "customer answer" and "booked a visit" in e["detail"]
               for e in detail["timeline"])


def test_english_screenshots(status_console: StatusConsole, browser: Browser) -> None:
    sc = status_console
    case_id = sc.open_case("hp-ann")
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(viewport=viewport, timezone_id="UTC", locale="en-GB")
        p = context.new_page()
        p.goto(sc.link(case_id))
        expect(p.locator("h1")).to_have_text("Your heat pump (hp-ann)")
        expect(p.get_by_test_id("noticed")).to_contain_text("2026-12-06 23:30 GMT")
        p.screenshot(path=str(SHOTS / f"status_en_{name}.png"), full_page=True)
        context.close()
