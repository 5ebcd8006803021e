"""A support agent in a real browser (Debian's chromium, driven by Playwright): log in with a
token, find the case the simulated leak opened in the queue, see its chart, acknowledge it.

Screenshots of the queue, the case (before and after acknowledging), the fleet and the device
page go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.console.conftest import ROOT, ConsoleUnderTest

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium not installed (Debian package chromium; make test installs it)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh page of a headless chromium, closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900},
                                          timezone_id="UTC", locale="en-GB")
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def test_agent_logs_in_sees_the_chart_and_acknowledges(console: ConsoleUnderTest,
                                                       page: Page) -> None:
    p = page
    problems: list[str] = []  # script errors and CSP violations would land here
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    case_id = console.case_id("acme", "open")

    # an anonymous visit lands on the login page; a wrong token is refused
    p.goto(f"{console.url}/")
    expect(p).to_have_url(f"{console.url}/login?next=%2F")
    p.fill("#token", "fw_000000000000_wrongwrongwrongwrongwrong")
    p.click("button[type=submit]")
    expect(p.get_by_role("alert")).to_contain_text("not valid")
    problems.clear()  # the browser logs that 401; only what comes after counts

    p.fill("#token", console.tokens[("acme", "agent")])
    p.click("button[type=submit]")
    expect(p.locator("h1")).to_have_text("Case queue")
    p.select_option("select[name=severity]", "warning")  # the filter submits itself
    expect(p).to_have_url(f"{console.url}/?status=unresolved&severity=warning")
    row = p.locator("table.queue tbody tr", has=p.locator(f"a[href='/cases/{case_id}']"))
    expect(row).to_contain_text("warning")
    expect(row).to_contain_text("open")
    p.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)

    row.locator(f"a[href='/cases/{case_id}']").click()
    expect(p).to_have_url(f"{console.url}/cases/{case_id}")
    chart = p.get_by_test_id("chart")
    expect(chart).to_have_attribute("data-ready", "true")
    expect(chart.locator("canvas")).to_have_count(1)
    box = chart.locator("canvas").bounding_box()
    assert box is not None and box["width"] > 500 and box["height"] > 200
    expect(p.locator("#field-picker button.on")).to_have_count(1)
    expect(p.get_by_test_id("notice-customer")).to_contain_text("To the customer")
    p.screenshot(path=str(ARTIFACTS / "case.png"), full_page=True)

    p.click("#acknowledge")
    expect(p.locator("#case-status")).to_have_text("acknowledged")
    expect(p.locator("ol.timeline")).to_contain_text("acknowledged agent of acme")
    expect(p.locator("#acknowledge")).to_have_count(0)
    p.screenshot(path=str(ARTIFACTS / "case-acknowledged.png"), full_page=True)

    with console.client("acme", "viewer") as api:
        case = api.get(f"/api/v1/cases/{case_id}").json()
    assert case["status"] == "acknowledged"
    device = case["device_id"]

    p.click("text=Fleet")
    expect(p.locator("h1")).to_have_text("Fleet")
    p.screenshot(path=str(ARTIFACTS / "fleet.png"), full_page=True)

    p.locator("table.queue a", has_text=device).first.click()
    expect(p.locator("h1")).to_have_text(device)
    expect(p.get_by_test_id("chart")).to_have_attribute("data-ready", "true")
    p.screenshot(path=str(ARTIFACTS / "device.png"), full_page=True)
    assert problems == []


def test_a_stale_form_and_another_tenants_case_are_refused(console: ConsoleUnderTest,
                                                           page: Page) -> None:
    p = page
    acme_case = _any_acme_case(console)
    p.goto(f"{console.url}/login")
    p.fill("#token", console.tokens[("globex", "agent")])
    p.click("button[type=submit]")
    answer = p.goto(f"{console.url}/cases/{acme_case}")
    assert answer is not None and answer.status == 404
    # a form posted without the session's CSRF secret (as another site would) changes nothing
    status = p.request.post(f"{console.url}/cases/{acme_case}/acknowledge",
                            form={"csrf": "forged"}, max_redirects=0)
    assert status.status == 403


def _any_acme_case(console: ConsoleUnderTest) -> int:
    with console.client("acme", "viewer") as api:
        return int(api.get("/api/v1/cases", params={"limit": 1}).json()["items"][0]["id"])


def _log_in(console: ConsoleUnderTest, p: Page, tenant: str = "acme",
            role: str = "agent") -> None:
    p.goto(f"{console.url}/login")
    p.fill("#token", console.tokens[(tenant, role)])
    p.click("button[type=submit]")
    expect(p.locator("h1")).to_have_text("Case queue")


_SCRIPT = "<script>document.title = 'owned'</script>"
_REFRESH = '<meta http-equiv="refresh" content="0;url=https://evil.example/">'


def test_notes_assignees_and_paths_show_as_text(console: ConsoleUnderTest, page: Page) -> None:
    """Issue 18.1: what agents and URLs carry is text on the page, never markup."""
    p = page
    case_id = console.case_id("globex")
    _log_in(console, p, "globex")
    p.goto(f"{console.url}/cases/{case_id}")
    p.fill("form.stack textarea[name=text]", f"called {_SCRIPT}{_REFRESH}")
    p.click("form.stack button")
    timeline = p.locator("ol.timeline")
    expect(timeline).to_contain_text(f"called {_SCRIPT}{_REFRESH}")
    p.fill("form.inline input[name=text][placeholder^=assign]", "<b>kim</b>")
    p.click("form.inline:has(input[placeholder^=assign]) button")
    expect(timeline).to_contain_text("<b>kim</b>")
    expect(p.locator(".facts")).to_contain_text("<b>kim</b>")
    # the markup is not in the document: no element came of it
    expect(p.locator("main script:not(#chart-data), main meta, main b")).to_have_count(0)
    assert p.title() != "owned"
    expect(p).to_have_url(f"{console.url}/cases/{case_id}")

    answer = p.goto(f"{console.url}/devices/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert answer is not None and answer.status == 404
    expect(p.locator("main")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(p.locator("main img, main script")).to_have_count(0)


def test_the_login_page_reflects_no_markup_and_redirects_only_home(
        console: ConsoleUnderTest, page: Page) -> None:
    """Issue 18.1: ``next`` that breaks out of its attribute is neither markup nor a target."""
    p = page
    p.goto(f"{console.url}/login?next=/%22%3E{_REFRESH}")
    expect(p.locator("meta[http-equiv]")).to_have_count(0)
    expect(p.locator("input[name=next]")).to_have_value("/")
    p.fill("#token", console.tokens[("acme", "viewer")])
    p.click("button[type=submit]")
    expect(p).to_have_url(f"{console.url}/")
    # a local path with a query still works
    p.goto(f"{console.url}/login?next=/fleet%3Fx%3D1")
    expect(p.locator("input[name=next]")).to_have_value("/fleet?x=1")
