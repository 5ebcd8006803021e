"""Resolution codes through the real console server (issue 20): resolving needs an outcome,
a confirmed fault needs one of the product's categories, a false alarm a reason; the outcome is
stored as a label with the case's evidence window, from the API and from the case page's form."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.orm import Session

from rules.case_actions import labels
from rules.db import CaseRow
from tests.integration.console.conftest import ConsoleUnderTest
from tests.integration.console.test_console_web import _login

pytestmark = pytest.mark.integration


def _new_case(console: ConsoleUnderTest) -> int:
    with Session(console.ctx.engine) as session:
        row = CaseRow(tenant="acme", device_id=f"hp-res-{time.monotonic_ns()}",
                      product="heat_pump", rule="heat_pump_refrigerant_circuit",
                      rules="heat_pump_refrigerant_circuit", severity="warning", status="open",
                      open_key=f"res{time.monotonic_ns()}", fault_started_at=1000.0,
                      opened_at=1600.0, field="discharge_temp", peak_score=0.9,
                      summary="discharge_temp anomalous", evidence_json="{}")
        session.add(row)
        session.commit()
        return row.id


@pytest.fixture
def acme(console: ConsoleUnderTest) -> Iterator[httpx.Client]:
    with console.client("acme", "agent") as client:
        yield client


REFUSED = [
    pytest.param({}, "outcome", id="no-outcome"),
    pytest.param({"outcome": "fixed"}, "outcome", id="unknown-outcome"),
    pytest.param({"outcome": "confirmed"}, "needs a category", id="confirmed-without-category"),
    pytest.param({"outcome": "confirmed", "category": "bearing_wear"}, "bearing_wear",
                 id="category-of-another-product"),
    pytest.param({"outcome": "false_alarm"}, "needs a reason", id="false-alarm-without-reason"),
    pytest.param({"outcome": "false_alarm", "reason": "gremlins"}, "reason",
                 id="unknown-reason"),
]


@pytest.mark.parametrize(("body", "said"), REFUSED)
def test_a_resolution_without_a_valid_code_is_refused_and_the_case_stays_open(
        console: ConsoleUnderTest, acme: httpx.Client, body: dict[str, str], said: str) -> None:
    case_id = _new_case(console)
    answer = acme.post(f"/api/v1/cases/{case_id}/resolve", json=body)
    assert answer.status_code == 422
    assert said in answer.text
    assert acme.get(f"/api/v1/cases/{case_id}").json()["status"] == "open"
    assert labels(console.ctx.engine, "acme", case_id) == []


CODES = [
    pytest.param({"outcome": "confirmed", "category": "refrigerant_leak"}, "refrigerant_leak",
                 id="confirmed"),
    pytest.param({"outcome": "false_alarm", "reason": "expected_behaviour"},
                 "expected_behaviour", id="false-alarm"),
    pytest.param({"outcome": "customer_caused"}, "", id="customer-caused"),
    pytest.param({"outcome": "duplicate"}, "", id="duplicate"),
]


@pytest.mark.parametrize(("body", "category"), CODES)
def test_the_api_stores_the_outcome_as_a_label_with_the_evidence_window(
        console: ConsoleUnderTest, acme: httpx.Client, body: dict[str, str],
        category: str) -> None:
    case_id = _new_case(console)
    answer = acme.post(f"/api/v1/cases/{case_id}/resolve", json={**body, "comment": "checked"})
    assert answer.status_code == 200, answer.text
    case = answer.json()
    assert case["status"] == "resolved"
    [line] = [e["detail"] for e in case["timeline"] if e["kind"] == "resolved"]
    assert line.startswith(body["outcome"])
    [label] = labels(console.ctx.engine, "acme", case_id)
    assert (label.outcome, label.category, label.rules) == (
        body["outcome"], category, "heat_pump_refrigerant_circuit")
    assert (label.window_start, label.window_end) == (1000.0, case["resolved_at"])
    assert label.labelled_by == "agent of acme" and label.comment == "checked"
    # and the case says it, to the API's readers
    assert [(x["outcome"], x["category"], x["window_end"], x["labelled_by"])
            for x in acme.get(f"/api/v1/cases/{case_id}").json()["labels"]] == [
        (body["outcome"], category, case["resolved_at"], "agent of acme")]


def test_the_case_page_form_offers_the_products_categories_and_resolves_with_a_code(
        console: ConsoleUnderTest) -> None:
    case_id = _new_case(console)
    browser, csrf = _login(console, "acme", "agent")
    try:
        page = browser.get(f"/cases/{case_id}").text
        assert 'value="refrigerant_leak"' in page and 'value="bearing_wear"' not in page
        assert 'value="installation"' in page and 'name="outcome"' in page
        refused = browser.post(f"/cases/{case_id}/resolve", data={"csrf": csrf, "text": "x"})
        assert refused.status_code == 422
        answer = browser.post(f"/cases/{case_id}/resolve", data={
            "csrf": csrf, "outcome": "false_alarm", "reason": "installation",
            "category": "refrigerant_leak", "text": "sensor mounted in the sun"})
        assert answer.status_code == 303
        assert "false_alarm (installation): sensor mounted in the sun" in browser.get(
            f"/cases/{case_id}").text
    finally:
        browser.close()
    [label] = labels(console.ctx.engine, "acme", case_id)
    assert (label.outcome, label.category) == ("false_alarm", "installation")
