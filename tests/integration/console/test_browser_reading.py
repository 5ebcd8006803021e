"""A support lead reads the console correctly in any time zone and on a phone (issue 24), in
Debian's chromium driven by Playwright.

The screenshots the docs show (docs/console.md) are taken here: the case page on a desktop, the
same page in a browser set to Asia/Seoul, and the queue and a case on a phone. They go to
``test-artifacts/console/`` on every run, and into ``docs/img/console/`` (tracked files) only
with ``FOREWARN_SCREENSHOTS=docs``, so ``make test`` leaves the checkout clean.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core.events import ScoredBatch
from forewarn.console.units import FIELD_UNITS
from rules.db import CaseRow
from rules.model import load_rules
from rules.registry import parse_registry
from tests.integration.console.conftest import ROOT, RULES, ConsoleUnderTest
from tests.integration.console.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

SHOTS = (ROOT / "docs" / "img" / "console" if os.environ.get("FOREWARN_SCREENSHOTS") == "docs"
         else ROOT / "test-artifacts" / "console")
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}

NewPage = Callable[..., Page]


@pytest.fixture
def new_page() -> Iterator[NewPage]:
    """Pages of a headless chromium in a given time zone and viewport."""
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                      args=CHROMIUM_ARGS)

        def make(timezone_id: str = "UTC", viewport: dict[str, int] | None = None,
                 **options: Any) -> Page:
            context = browser.new_context(viewport=viewport or DESKTOP,  # type: ignore[arg-type]
                                          timezone_id=timezone_id, locale="en-US", **options)
            return context.new_page()

        try:
            yield make
        finally:
            browser.close()


def _log_in(console: ConsoleUnderTest, p: Page, tenant: str = "acme",
            role: str = "agent") -> None:
    p.goto(f"{console.url}/login")
    p.fill("#token", console.tokens[(tenant, role)])
    p.click("button[type=submit]")
    expect(p.locator("h1")).to_have_text("Case queue")


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _chart_data(p: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(p.locator("#chart-data").text_content() or "{}")
    return data


def _open_case(console: ConsoleUnderTest, p: Page, case_id: int) -> None:
    p.goto(f"{console.url}/cases/{case_id}")
    expect(p.get_by_test_id("chart")).to_have_attribute("data-ready", "true")


def test_charts_read_utc_in_a_browser_in_seoul(console: ConsoleUnderTest,
                                               new_page: NewPage) -> None:
    """An onset at hh:mm UTC shows at hh:mm (not at Seoul's local time, nine hours later),
    on the marks, the hover and the axis, all in ISO order."""
    p = new_page("Asia/Seoul", viewport={"width": 1400, "height": 1180})
    assert p.evaluate("() => new Date(0).getHours()") == 9  # the browser really is in Seoul
    case_id = console.case_id("acme")
    with console.client("acme", "viewer") as api:
        case = api.get(f"/api/v1/cases/{case_id}").json()
    _log_in(console, p)
    _open_case(console, p, case_id)

    onset = p.locator("#chart-marks li.mark-onset time")
    expect(onset).to_have_text(f"{_utc(case['fault_started_at'])} UTC")
    expect(p.locator("#chart-marks li.mark-opened time")).to_have_text(
        f"{_utc(case['opened_at'])} UTC")

    # the hover: the cursor on the sample nearest the onset names that sample's UTC time
    at, shown = p.evaluate("""t => {
        const u = document.getElementById("chart")._uplot;
        const i = u.valToIdx(t);
        u.setCursor({left: u.valToPos(u.data[0][i], "x"), top: 10});
        const legend = document.querySelector(".u-legend .u-series .u-value");
        return [u.data[0][i], legend.textContent];
    }""", case["fault_started_at"])
    assert abs(at - case["fault_started_at"]) <= _chart_data(p)["every_s"]
    assert shown == _utc(at)

    # the axis: ticks on whole UTC hours, labelled in UTC (HH:MM, the date under a new day)
    splits, labels = p.evaluate("""() => {
        const a = document.getElementById("chart")._uplot.axes[0];
        return [a._splits, a._values];
    }""")
    assert splits and len(splits) == len(labels)
    for ts, label in zip(splits, labels, strict=True):
        assert label.split("\n")[0] == _utc(ts)[11:], (ts, label)
        assert re.fullmatch(r"\d\d:\d\d(\n\d{4}-\d\d-\d\d)?", label)
    assert any("\n" in label for label in labels)  # the date, in ISO order
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SHOTS / "case-seoul.png"), full_page=False)


def test_the_case_page_says_what_is_wrong_what_to_do_and_for_whom(
        console: ConsoleUnderTest, new_page: NewPage, monkeypatch: pytest.MonkeyPatch) -> None:
    case_id = console.case_id("acme")
    with console.client("acme", "viewer") as api:
        case = api.get(f"/api/v1/cases/{case_id}").json()
    registry = parse_registry(
        "customers:\n  - {id: kim, name: Kim Min-jun, timezone: Asia/Seoul}\n"
        f"devices:\n  {case['device_id']}: {{customer: kim}}\n", source="customers.yaml")
    monkeypatch.setattr(console.ctx, "registry", registry)
    descriptions = {r.name: " ".join(r.description.split()) for r in load_rules(RULES).rules}

    p = new_page()
    _log_in(console, p)
    row = p.locator("table.queue tbody tr", has=p.locator(f"a[href='/cases/{case_id}']"))
    expect(row).to_contain_text("Kim Min-jun")
    expect(row).not_to_contain_text(f"acme/{case['device_id']}")
    _open_case(console, p, case_id)

    expect(p.locator("#customer")).to_have_text("Kim Min-jun")
    for rule in case["rules"]:
        expect(p.locator("#likely-cause")).to_contain_text(descriptions[rule])
    steps = p.locator("#what-to-do li")
    expect(steps.first).to_be_visible()
    assert steps.count() >= 3
    expect(p.locator("#what-to-do")).to_contain_text("Resolve the case once the repair is done")

    # the chart's value axis and legend carry the field's unit
    field = p.get_by_test_id("chart").get_attribute("data-field") or ""
    unit = FIELD_UNITS["heat_pump"][field]
    label = p.evaluate("() => document.getElementById('chart')._uplot.axes[1].label")
    assert label == f"{field} ({unit})"
    expect(p.locator(".u-legend")).to_contain_text(f"{field} ({unit})")

    # one clock: the timeline runs on the data's clock; the notices the outbox sent on the
    # wall clock (after the simulated data ended) say so instead of passing for the same clock
    expect(p.locator("ol.timeline li.ev-opened time")).to_have_text(
        f"{_utc(case['opened_at'])} UTC")
    expect(p.locator("ol.timeline .wallclock")).to_have_count(0)
    sent = p.locator(".notice header .wallclock")
    expect(sent.first).to_contain_text("(wall clock)")
    assert sent.count() == len([n for n in case["notices"] if n["sent_at"]])
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SHOTS / "case.png"), full_page=True)


def test_a_new_device_gets_two_days_and_says_it_is_learning(console: ConsoleUnderTest,
                                                            new_page: NewPage) -> None:
    """One data bucket still spans the last two days (not years), and a device the detector
    is still learning reads "learning", not a green "ok"."""
    device = f"hp-new-{time.monotonic_ns() % 10**9}"
    last = console.ctx.clock() - 3600.0
    assert console.ctx.store is not None
    console.ctx.store.write(ScoredBatch(  # type: ignore[attr-defined]
        tenant="acme", device_id=device, product="heat_pump",
        fields=("compressor_current", "discharge_temp"), t=np.array([last - 60.0, last]),
        values=np.array([[3.1, 55.0], [3.2, 55.5]]), scores=np.zeros((2, 2))))
    p = new_page()
    _log_in(console, p)
    p.goto(f"{console.url}/devices/{device}")
    expect(p.get_by_test_id("chart")).to_have_attribute("data-ready", "true")
    lo, hi = p.evaluate("() => { const u = document.getElementById('chart')._uplot;"
                        " return [u.scales.x.min, u.scales.x.max]; }")
    assert last - 2 * 86400.0 - 60.0 <= lo <= last - 2 * 86400.0 + 60.0
    assert last <= hi <= last + 3600.0
    status = p.locator("#device-status")
    expect(status).to_contain_text("learning, 0 % of warm-up")
    expect(status.locator(".dot.ok")).to_have_count(0)
    p.goto(f"{console.url}/fleet")
    expect(p.locator("tr", has=p.locator(f"a[href='/devices/{device}']"))).to_contain_text(
        "learning")


def test_a_device_page_lists_its_resolved_cases_too(console: ConsoleUnderTest,
                                                    new_page: NewPage) -> None:
    device = f"hp-old-{time.monotonic_ns() % 10**9}"
    with Session(console.ctx.engine) as session:
        row = CaseRow(tenant="acme", device_id=device, product="heat_pump",
                      rule="heat_pump_water_circuit", severity="warning", status="resolved",
                      open_key=f"k{time.monotonic_ns()}", fault_started_at=1000.0,
                      opened_at=1600.0, resolved_at=9000.0, field="water_flow",
                      peak_score=0.9, summary="water_flow anomalous", evidence_json="{}")
        session.add(row)
        session.commit()
        case_id = row.id
    p = new_page()
    _log_in(console, p)
    p.goto(f"{console.url}/devices/{device}")
    history = p.locator("#case-history tr", has=p.locator(f"a[href='/cases/{case_id}']"))
    expect(history).to_contain_text(f"FW-{case_id}")
    expect(history).to_contain_text("resolved")
    expect(history).to_contain_text(_utc(9000.0))


def test_a_phone_sees_the_whole_page(console: ConsoleUnderTest, new_page: NewPage) -> None:
    """390×844: the header spans the page, the queue table scrolls in its own box and no
    case number wraps; the case page fits too."""
    p = new_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _log_in(console, p)  # lands on the queue of unresolved cases

    def page_width() -> int:
        width: int = p.evaluate("() => document.documentElement.scrollWidth")
        return width

    assert page_width() <= PHONE["width"]
    header = p.locator("header.top").bounding_box()
    assert header is not None and header["x"] == 0 and header["width"] >= PHONE["width"] - 1
    box = p.locator(".table-scroll").first
    assert box.evaluate("e => e.scrollWidth > e.clientWidth")  # it scrolls, the page does not
    refs = p.locator("table.queue a.ref")
    assert refs.count() >= 1
    for i in range(refs.count()):
        assert refs.nth(i).evaluate("e => e.getClientRects().length") == 1  # FW-3 on one line
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SHOTS / "queue-phone.png"), full_page=False)

    _open_case(console, p, console.case_id("acme"))
    assert page_width() <= PHONE["width"]
    p.screenshot(path=str(SHOTS / "case-phone.png"), full_page=False)


def test_the_favicon_is_served(console: ConsoleUnderTest, new_page: NewPage) -> None:
    p = new_page()
    answer = p.request.get(f"{console.url}/favicon.ico")
    assert answer.status == 200
    assert answer.headers["content-type"] == "image/vnd.microsoft.icon"
    assert answer.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file
    svg = p.request.get(f"{console.url}/static/favicon.svg")
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
