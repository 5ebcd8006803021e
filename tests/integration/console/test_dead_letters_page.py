"""Dead letters in the console (issue 16.6): the page and the API show a tenant only the
messages core refused under its own topics, with counts by reason, payloads as text."""

from __future__ import annotations

import re

import httpx
import pytest

from core.dead_letter import DeadLetter, DeadLetterStore
from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration

_MARKUP = b'<script>alert(1)</script><meta http-equiv="refresh">'


@pytest.fixture(scope="module")
def letters(console: ConsoleUnderTest) -> ConsoleUnderTest:
    """Dead letters under both tenants' topics, as core persists them."""
    DeadLetterStore(console.ctx.engine).add_many([
        DeadLetter("invalid", "forewarn/v1/acme/hp-0001/telemetry", "t: field required",
                   b'{"device_id": "hp-0001"}', 1_700_000_000.0),
        DeadLetter("too_deep", "forewarn/v1/acme/hp-0002/telemetry", "nested too deep",
                   b"[" * 300, 1_700_000_100.0),
        DeadLetter("bad_encoding", "forewarn/v1/acme/hp-0003/telemetry", "not JSON",
                   _MARKUP + b"\xff\xfe", 1_700_000_200.0),
        DeadLetter("tenant_mismatch", "forewarn/v1/globex/gx-1/telemetry", "globex secret",
                   b"globex-only-payload", 1_700_000_300.0),
        # a tenant whose name starts like another's must not leak into it
        DeadLetter("invalid", "forewarn/v1/acme2/hp-9/telemetry", "acme2 only",
                   b"acme2-only-payload", 1_700_000_400.0),
    ])
    return console


def _login(console: ConsoleUnderTest, tenant: str) -> httpx.Client:
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert csrf is not None
    answer = browser.post("/login", data={"token": console.tokens[(tenant, "viewer")],
                                          "next": "/", "csrf": csrf.group(1)})
    assert answer.status_code == 303
    return browser


def test_api_lists_only_the_callers_tenant(letters: ConsoleUnderTest) -> None:
    with letters.client("acme", "viewer") as api:
        page = api.get("/api/v1/deadletters").json()
        only_deep = api.get("/api/v1/deadletters", params={"reason": "too_deep"}).json()
    assert page["counts"] == {"bad_encoding": 1, "invalid": 1, "too_deep": 1}
    assert [d["reason"] for d in page["items"]] == ["bad_encoding", "too_deep", "invalid"]
    assert all(d["topic"].startswith("forewarn/v1/acme/") for d in page["items"])
    assert page["items"][0]["payload_head"].endswith("\\xff\\xfe")
    assert [d["topic"] for d in only_deep["items"]] == ["forewarn/v1/acme/hp-0002/telemetry"]
    with letters.client("globex", "viewer") as api:
        page = api.get("/api/v1/deadletters").json()
    assert page["counts"] == {"tenant_mismatch": 1}
    assert [d["detail"] for d in page["items"]] == ["globex secret"]


def test_api_needs_a_token(letters: ConsoleUnderTest) -> None:
    with httpx.Client(base_url=letters.url) as anonymous:
        assert anonymous.get("/api/v1/deadletters").status_code == 401


def test_page_shows_counts_and_escaped_payloads(letters: ConsoleUnderTest) -> None:
    with httpx.Client(base_url=letters.url, follow_redirects=False) as anonymous:
        answer = anonymous.get("/deadletters")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    browser = _login(letters, "acme")
    try:
        html = browser.get("/deadletters").text
        filtered = browser.get("/deadletters", params={"reason": "invalid"}).text
    finally:
        browser.close()
    assert "forewarn/v1/acme/hp-0003/telemetry" in html and "too_deep" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "globex" not in html and "acme2" not in html
    assert "hp-0001" in filtered and "hp-0002" not in filtered
