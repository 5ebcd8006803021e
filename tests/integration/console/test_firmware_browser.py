"""The firmware page in a real browser (Debian's chromium, driven by Playwright, as
``test_browser.py``): an agent logs in, follows the header's Firmware link and reads the
rollout of 2.6 with its rates; the page raises no script error. Screenshot:
``test-artifacts/console/firmware.png``."""

from __future__ import annotations

import pytest

from tests.integration.console.conftest import ConsoleUnderTest
from tests.integration.console.test_browser import ARTIFACTS, page  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

from playwright.sync_api import Page, expect  # noqa: E402 (test_browser skips without it)


def test_agent_reads_the_firmware_rollout(rollout: tuple[ConsoleUnderTest, float],
                                          page: Page) -> None:  # noqa: F811
    console, _ = rollout
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{console.url}/login")
    page.fill("#token", console.tokens[("acme", "agent")])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Case queue")
    page.get_by_role("link", name="Firmware").click()
    expect(page).to_have_url(f"{console.url}/firmware")
    expect(page.locator("h1")).to_have_text("Firmware rollouts")
    rows = page.locator("table.firmware tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("2.5")
    expect(rows.nth(1)).to_contain_text("2.6")
    expect(rows.nth(1).locator("td").nth(3)).to_have_text("2")      # moved to it
    expect(page.locator("body")).not_to_contain_text("9.0")          # globex's version
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "firmware.png"), full_page=True)
    assert not problems, problems
