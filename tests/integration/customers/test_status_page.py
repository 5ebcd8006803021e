"""The customer's status page over HTTP (issue 19.1/19.2): the link in the notice opens the
case in the customer's language and zone, anything else is 404, and answers are recorded once,
protected by CSRF and a rate limit, and change what happens next."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import CaseRow, CustomerAnswerRow, NoticeRow
from rules.status_link import StatusLinks
from tests.integration.customers.conftest import SECRET, StatusConsole

pytestmark = pytest.mark.integration


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def _answer(client: httpx.Client, link: str, **form: str | list[str]) -> httpx.Response:
    page = client.get(link)
    assert page.status_code == 200
    return client.post(link, data={"csrf": _csrf(page), **form})


def test_the_notice_carries_a_link_to_a_page_in_the_customers_words(
        status_console: StatusConsole) -> None:
    sc = status_console
    case_id = sc.open_case("hp-ann")
    notice = sc.customer_notice(case_id)
    assert notice is not None and notice.status == "pending"
    link = sc.link(case_id)
    assert link.startswith(f"{sc.url}/s/{case_id}-")
    page = httpx.get(link)
    assert page.status_code == 200
    assert "Your heat pump (hp-ann)" in page.text
    assert f"Case FW-{case_id}" in page.text
    # 2026-12-06 23:30 UTC is the same wall time in London in winter
    assert "discharge temperature and suction pressure have been unusual since " \
           "2026-12-06 23:30 GMT" in page.text
    assert "may stop working around 2026-12-10 00:00 GMT" in page.text
    # nothing internal: no score, no evidence values, no rule name, no other customer
    for internal in ("0.93", "81.5", "refrigerant_leak", "kim", "hp-kim"):
        assert internal not in page.text
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="signature"),
    pytest.param(lambda t: str(int(t.split("-")[0]) + 1) + t[t.index("-"):], id="other-case"),
    pytest.param(lambda t: "1-0-AAAAAAAAAAAAAAAAAAAAAA", id="forged"),
    pytest.param(lambda t: "nonsense", id="garbage"),
])
def test_a_tampered_token_is_404(status_console: StatusConsole, mangle: object,
                                request: pytest.FixtureRequest) -> None:
    sc = status_console
    case_id = sc.open_case(f"hp-{request.node.callspec.id}")  # a device of its own
    token = sc.link(case_id).rsplit("/", 1)[1]
    assert httpx.get(f"{sc.url}/s/{token}").status_code == 200
    bad = mangle(token)  # type: ignore[operator]
    assert httpx.get(f"{sc.url}/s/{bad}").status_code == 404
    assert httpx.post(f"{sc.url}/s/{bad}", data={"kind": "noted"}).status_code == 404


def test_an_expired_token_and_a_closed_case_are_404(status_console: StatusConsole) -> None:
    sc = status_console
    case_id = sc.open_case("hp-ann3")
    link = sc.link(case_id)
    # a token older than its maximum age
    old = StatusLinks(SECRET, sc.url, clock=lambda: sc.now[0] - 91 * 86400.0).url(case_id)
    assert httpx.get(old).status_code == 404
    # resolved: the page stays during the grace period, then is gone
    assert sc.book.resolve("acme", "hp-ann3", "refrigerant_leak", at=sc.now[0]) == case_id
    page = httpx.get(link)
    assert page.status_code == 200 and "Working normally again" in page.text
    sc.now[0] += 8 * 86400.0
    try:
        assert httpx.get(link).status_code == 404
    finally:
        sc.now[0] -= 8 * 86400.0


def test_answers_are_recorded_once_and_change_what_happens_next(
        status_console: StatusConsole) -> None:
    sc = status_console
    booked = sc.open_case("hp-kim")
    ignored = sc.open_case("hp-kim2")
    with httpx.Client() as client:
        # no CSRF value (or another browser's): refused, nothing recorded
        assert client.post(sc.link(booked), data={"kind": "visit"}).status_code == 403
        done = _answer(client, sc.link(booked), kind="visit",
                       window=["saturday", "weekday-evening", "bogus"])
        assert done.status_code == 303
        assert done.headers["location"].endswith("?answered=visit")
        again = _answer(client, sc.link(booked), kind="visit",
                        window=["saturday", "weekday-evening"])
        assert again.status_code == 303
        page = client.get(sc.link(booked))
        assert "방문 일정을 잡고 있습니다" in page.text  # the state reads "visit arranged"
    with Session(sc.ctx.engine) as session:
        answers = session.scalars(select(CustomerAnswerRow).where(
            CustomerAnswerRow.case_id == booked)).all()
        assert [(a.kind, a.detail) for a in answers] == [
            ("visit", "weekday-evening, saturday")]
        team = session.scalars(select(NoticeRow).where(
            NoticeRow.case_id == booked, NoticeRow.kind == "answer")).all()
        assert len(team) == 1 and team[0].audience == "team"
        assert team[0].recipient == "team@example.com"
        assert "booked a visit" in team[0].body
    # an hour later the unanswered case escalates; the booked one does not
    sc.now[0] += 2 * 3600.0
    try:
        escalated = sc.book.escalate_due()
        assert ignored in escalated and booked not in escalated
    finally:
        sc.now[0] -= 2 * 3600.0
    events = [e.kind for e in sc.book.timeline(booked)]
    assert "customer answer" in events and "escalated" not in events


def test_call_me_escalates_and_answers_are_rate_limited(status_console: StatusConsole) -> None:
    sc = status_console
    case_id = sc.open_case("hp-ann4", predicted_in_s=None)
    link = sc.link(case_id)
    with httpx.Client() as client:
        assert _answer(client, link, kind="call").status_code == 303
        case = sc.book.case(case_id)
        assert case is not None and case.severity == "critical"
        assert case.escalated_at == sc.now[0]
        codes = [_answer(client, link, kind="fine", detail=f"reason {i}").status_code
                 for i in range(8)]
    # six answers an hour per address and case (the fixture's limit): then 429
    assert codes[:5] == [303] * 5 and codes[-1] == 429
    with Session(sc.ctx.engine) as session:
        kinds = session.scalars(select(CustomerAnswerRow.kind).where(
            CustomerAnswerRow.case_id == case_id)).all()
    assert sorted(set(kinds)) == ["call", "fine"] and len(kinds) == 6
    status = sc.book.case(case_id)
    assert status is not None and isinstance(status, CaseRow)
