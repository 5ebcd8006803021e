"""Tickets coming in from a helpdesk (issue 19, helpdesk feed in): a ticket posted before the
case opens suppresses the customer notice and is linked to the case; a ticket about a device
with an open case is attached and withdraws a notice still waiting; a solved ticket can resolve
the case."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rules.db import TicketRow
from tests.integration.customers.conftest import StatusConsole

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def helpdesk(status_console: StatusConsole) -> Iterator[httpx.Client]:
    """The helpdesk's client: an agent token of acme."""
    token = status_console.ctx.tokens.create("acme", "agent", "zendesk").token
    with httpx.Client(base_url=status_console.url, timeout=30.0,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _ticket(sc: StatusConsole, ticket: int) -> TicketRow:
    from sqlalchemy.orm import Session

    with Session(sc.ctx.engine) as session:
        row = session.get(TicketRow, ticket)
        assert row is not None
        return row


def test_a_ticket_before_the_case_suppresses_the_customer_notice(
        status_console: StatusConsole, helpdesk: httpx.Client) -> None:
    sc = status_console
    # the customer called first; the helpdesk names the device (the registry knows whose)
    sent = helpdesk.post("/api/v1/helpdesk/events", json={
        "event": "created", "ticket_id": "ZD-101", "device_id": "hp-kim4",
        "subject": "보일러가 이상해요", "at": "2026-12-06T22:00:00Z"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["action"] == "opened" and sent.json()["case_id"] is None
    case_id = sc.open_case("hp-kim4")
    notice = sc.customer_notice(case_id)
    assert notice is not None and notice.status == "suppressed"
    assert "open ticket" in (notice.last_error or "")
    assert _ticket(sc, sent.json()["ticket"]).case_id == case_id
    assert _ticket(sc, sent.json()["ticket"]).customer_id == "kim"
    # the same event again changes nothing
    again = helpdesk.post("/api/v1/helpdesk/events", json={
        "event": "created", "ticket_id": "ZD-101", "device_id": "hp-kim4"})
    assert again.json()["ticket"] == sent.json()["ticket"]


def test_a_ticket_about_an_open_case_is_attached_and_solving_it_resolves(
        status_console: StatusConsole, helpdesk: httpx.Client) -> None:
    sc = status_console
    case_id = sc.open_case("hp-x1")
    notice = sc.customer_notice(case_id)
    assert notice is not None and notice.status == "pending"  # not delivered yet
    sent = helpdesk.post("/api/v1/helpdesk/events", json={
        "event": "created", "ticket_id": "FD-7", "device_id": "hp-x1",
        "subject": "heat pump noisy"})
    assert sent.json() == {"action": "attached", "ticket": sent.json()["ticket"],
                           "case_id": case_id, "suppressed_notice": True}
    notice = sc.customer_notice(case_id)
    assert notice is not None and notice.status == "suppressed"
    assert ("ticket", "helpdesk ticket FD-7 opened: heat pump noisy; the customer notice was "
            "withdrawn") in [(e.kind, e.detail) for e in sc.book.timeline(case_id)]
    solved = helpdesk.post("/api/v1/helpdesk/events", json={
        "event": "solved", "ticket_id": "FD-7", "resolve_case": True})
    assert solved.json()["action"] == "resolved"
    case = sc.book.case(case_id)
    assert case is not None and case.status == "resolved"
    assert _ticket(sc, sent.json()["ticket"]).status == "solved"


def test_a_ticket_quoting_the_case_reference_is_linked(status_console: StatusConsole,
                                                      helpdesk: httpx.Client) -> None:
    sc = status_console
    case_id = sc.open_case("hp-x2")
    sent = helpdesk.post("/api/v1/helpdesk/events", json={
        "event": "created", "ticket_id": "ZD-300", "customer_id": "someone",
        "subject": f"Re: FW-{case_id} still making noise"})
    assert sent.json()["action"] == "attached" and sent.json()["case_id"] == case_id


@pytest.mark.parametrize(("headers", "body", "status"), [
    pytest.param({}, {"event": "created", "ticket_id": "A"}, 401, id="no-token"),
    pytest.param(None, {"event": "exploded", "ticket_id": "A"}, 422, id="unknown-event"),
    pytest.param(None, {"event": "created"}, 422, id="no-ticket-id"),
    pytest.param(None, {"event": "created", "ticket_id": "A", "extra": 1}, 422, id="unknown-key"),
])
def test_bad_requests_are_refused(status_console: StatusConsole, helpdesk: httpx.Client,
                                  headers: dict[str, str] | None, body: dict[str, object],
                                  status: int) -> None:
    if headers is not None:
        sent = httpx.post(f"{status_console.url}/api/v1/helpdesk/events", json=body)
    else:
        sent = helpdesk.post("/api/v1/helpdesk/events", json=body)
    assert sent.status_code == status


def test_a_viewer_token_may_not_post_tickets(status_console: StatusConsole) -> None:
    token = status_console.ctx.tokens.create("acme", "viewer", "read-only").token
    sent = httpx.post(f"{status_console.url}/api/v1/helpdesk/events",
                      json={"event": "created", "ticket_id": "V"},
                      headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 403


def test_metrics_count_forewarned_and_missed_tickets(status_console: StatusConsole) -> None:
    # after the tests above: FD-7 and ZD-300 came after their case, ZD-101 before its case
    text = httpx.get(f"{status_console.url}/metrics").text
    assert 'forewarn_helpdesk_tickets_total{prior_case="yes"} 2.0' in text
    assert 'forewarn_helpdesk_tickets_total{prior_case="no"} 1.0' in text
    assert 'forewarn_customer_answers_total{kind="visit"} 0.0' in text


def test_the_console_page_shows_the_tenants_proactivity(status_console: StatusConsole) -> None:
    from forewarn.console.security import SESSION_COOKIE, sign_session

    sc = status_console

    def page(tenant: str) -> str:
        made = sc.ctx.tokens.create(tenant, "viewer", "reader")
        principal = sc.ctx.tokens.verify(made.token)
        assert principal is not None
        cookie = sign_session(sc.ctx, principal)
        reply = httpx.get(f"{sc.url}/proactivity", cookies={SESSION_COOKIE: cookie})
        assert reply.status_code == 200
        return reply.text

    acme = page("acme")
    # FD-7 and ZD-300 (quoting FW-n) came after their case; ZD-101 before its case (missed)
    assert '<span class="big">2</span> of 3 tickets' in acme
    assert '<span class="big">1</span> tickets with no case before them' in acme
    assert "ZD-101" in acme
    other = page("globex")  # another tenant sees none of acme's
    assert '<span class="big">0</span> of 0 tickets' in other and "ZD-101" not in other
    assert httpx.get(f"{sc.url}/proactivity", follow_redirects=False).status_code == 303
