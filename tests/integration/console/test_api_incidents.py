"""``/api/v1/incidents`` on a running console: a fleet incident the case book opened (three heat
pumps of one firmware, one rule) is listed for its tenant only, shown with its cases, and an
agent decides its held customer messages and closes it; a viewer may only read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from core.events import DetectorEvent
from rules.cases import CaseBook
from rules.evaluate import Alarm
from rules.incidents import IncidentBook, IncidentPolicy
from rules.model import Rule
from rules.registry import registry_from_dict
from tests.integration.console.conftest import TESTS_OWN_TENANT, ConsoleUnderTest


@pytest.fixture
def agent(console: ConsoleUnderTest) -> Iterator[httpx.Client]:
    """The agent of the tests' own tenant."""
    with console.client(TESTS_OWN_TENANT, "agent") as client:
        yield client


def _open_incident(console: ConsoleUnderTest) -> tuple[int, list[str]]:
    """Three devices of a firmware cohort open cases of one rule: one held incident."""
    tag = time.monotonic_ns()
    devices = [f"hp-inc-{tag}-{i}" for i in range(6)]
    registry = registry_from_dict({
        "customers": [{"id": f"c-{tag}"}],
        "devices": {d: {"customer": f"c-{tag}", "product": "heat_pump",
                        "firmware": f"9.{tag}" if i < 3 else "9.0"}
                    for i, d in enumerate(devices)}})
    incidents = IncidentBook(IncidentPolicy(customers="hold"), registry)
    book = CaseBook(console.ctx.engine, clock=lambda: 1000.0, registry=registry,
                    incidents=incidents)
    rule = Rule(name=f"r_{tag}", score_at_least=0.8, notify_customer=True)
    for i, device in enumerate(devices[:3]):
        book.record_alarm(Alarm(rule, TESTS_OWN_TENANT, device, "heat_pump", 0.0, 60.0 * i,
                                "discharge_temp", 0.9, 80.0))
    mine = [i for i in incidents.list_incidents(console.ctx.engine) if i.rule == rule.name]
    assert len(mine) == 1
    return mine[0].id, devices[:3]


def test_incidents_listed_shown_decided_and_closed(console: ConsoleUnderTest,
                                                   agent: httpx.Client) -> None:
    incident_id, devices = _open_incident(console)
    listed = agent.get("/api/v1/incidents", params={"status": "open"}).json()
    mine = next(i for i in listed if i["id"] == incident_id)
    assert mine["ref"] == f"INC-{incident_id}" and mine["devices"] == 3
    assert mine["customers"] == "hold" and mine["decision"] is None
    detail = agent.get(f"/api/v1/incidents/{incident_id}").json()
    assert sorted(c["device_id"] for c in detail["cases"]) == devices
    assert not any(c["customer_notified"] for c in detail["cases"])
    with console.client("globex", "agent") as globex:  # another tenant's: not there
        assert incident_id not in [i["id"] for i in globex.get("/api/v1/incidents").json()]
        assert globex.get(f"/api/v1/incidents/{incident_id}").status_code == 404
    with console.client(TESTS_OWN_TENANT, "viewer") as viewer:
        answer = viewer.post(f"/api/v1/incidents/{incident_id}/decide",
                             json={"decision": "message"})
        assert answer.status_code == 403
    decided = agent.post(f"/api/v1/incidents/{incident_id}/decide", json={"decision": "message"})
    assert decided.status_code == 200, decided.text
    assert all(c["customer_notified"] for c in decided.json()["cases"])
    again = agent.post(f"/api/v1/incidents/{incident_id}/decide", json={"decision": "quiet"})
    assert again.status_code == 409
    closed = agent.post(f"/api/v1/incidents/{incident_id}/close").json()
    assert closed["incident"]["status"] == "closed"
    assert agent.post(f"/api/v1/incidents/{incident_id}/close").status_code == 409


def _viewer_page(console: ConsoleUnderTest, path: str) -> str:
    """The console's page at ``path`` as the tests' tenant's viewer sees it (logged in)."""
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    try:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
        assert csrf is not None
        assert browser.post("/login", data={"token": console.tokens[(TESTS_OWN_TENANT, "viewer")],
                                            "next": "/", "csrf": csrf.group(1)}
                            ).status_code == 303
        return browser.get(path).text
    finally:
        browser.close()


def test_the_console_pages_list_and_show_incidents(console: ConsoleUnderTest) -> None:
    incident_id, devices = _open_incident(console)
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    try:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
        assert csrf is not None
        assert browser.post("/login", data={"token": console.tokens[(TESTS_OWN_TENANT, "viewer")],
                                            "next": "/", "csrf": csrf.group(1)}
                            ).status_code == 303
        listing = browser.get("/incidents").text
        page = browser.get(f"/incidents/{incident_id}").text
        missing = browser.get("/incidents/999999").status_code
    finally:
        browser.close()
    assert f'href="/incidents/{incident_id}"' in listing and f"INC-{incident_id}" in listing
    assert all(device in page for device in devices) and "held until someone decides" in page
    assert missing == 404


def test_an_incident_shows_its_devices_flagged_without_a_case(console: ConsoleUnderTest,
                                                              agent: httpx.Client) -> None:
    """Three pumps of one batch flagged unlike their peers open its incident before any case;
    the first one's case joins it. The API's ``flagged`` and the console page list the other
    two by their flags (device, detector, field, time); the one with a case is a case."""
    tag = time.monotonic_ns()
    devices = [f"hp-flag-{tag}-{i}" for i in range(8)]
    registry = registry_from_dict({
        "customers": [{"id": f"c-{tag}"}],
        "devices": {d: {"customer": f"c-{tag}", "product": "heat_pump",
                        "batch": f"B-{tag}" if i < 3 else f"B-{tag}-{i}"}
                    for i, d in enumerate(devices)}})
    incidents = IncidentBook(IncidentPolicy(dimensions=("batch",)), registry)
    book = CaseBook(console.ctx.engine, clock=lambda: 1000.0, registry=registry,
                    incidents=incidents)
    for i, device in enumerate(devices[:3]):
        book.record_flag(DetectorEvent(TESTS_OWN_TENANT, device, "heat_pump", "vibration",
                                       "peer", 60.0 * i, 0.9, 3.0, "unlike its peers"))
    rule = Rule(name=f"wear_{tag}", score_at_least=0.8, notify_customer=True)
    book.record_alarm(Alarm(rule, TESTS_OWN_TENANT, devices[0], "heat_pump", 0.0, 600.0,
                            "vibration", 0.9, 3.0))
    mine = [i for i in incidents.list_incidents(console.ctx.engine)
            if i.cohort == f"heat_pump/batch=B-{tag}"]
    assert [i.rule for i in mine] == ["unlike_peers"]
    detail = agent.get(f"/api/v1/incidents/{mine[0].id}").json()
    assert [c["device_id"] for c in detail["cases"]] == devices[:1]
    assert detail["flagged"] == [
        {"device_id": d, "detector": "peer", "field": "vibration", "at": 60.0 * i}
        for i, d in enumerate(devices[:3]) if i > 0]
    with httpx.Client(base_url=console.url) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schema["IncidentFlagView"]["properties"]) == {"device_id", "detector", "field",
                                                             "at"}
    assert "flagged" in schema["IncidentDetailView"]["required"]
    page = _viewer_page(console, f"/incidents/{mine[0].id}")
    assert "Flagged unlike their peers" in page
    assert all(f">{device}</a>" in page for device in devices[:3])
