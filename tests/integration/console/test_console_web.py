"""The web pages over plain HTTP: login and logout, CSRF, roles, tenant isolation, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from forewarn.console.throttle import LoginLimiter
from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration


def _form_csrf(browser: httpx.Client, path: str = "/login") -> str:
    """The CSRF secret of the form on ``path`` (the login form also sets its cookie)."""
    match = re.search(r'name="csrf" value="([^"]+)"', browser.get(path).text)
    assert match is not None
    return match.group(1)


def _login(console: ConsoleUnderTest, tenant: str, role: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    answer = browser.post("/login", data={"token": console.tokens[(tenant, role)], "next": "/",
                                          "csrf": _form_csrf(browser)})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return browser, _form_csrf(browser, "/")


@pytest.fixture
def globex_agent(console: ConsoleUnderTest) -> Iterator[tuple[httpx.Client, str]]:
    browser, csrf = _login(console, "globex", "agent")
    try:
        yield browser, csrf
    finally:
        browser.close()


def test_pages_need_a_login(console: ConsoleUnderTest) -> None:
    with httpx.Client(base_url=console.url, follow_redirects=False) as anonymous:
        for path in ("/", "/fleet", "/cases/1", "/devices/hp-0000"):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        refused = anonymous.post("/login", data={"token": "fw_nope",
                                                 "csrf": _form_csrf(anonymous)})
        assert refused.status_code == 401 and "not valid" in refused.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"],
                         ids=["scheme-relative", "absolute", "backslash"])
def test_login_never_redirects_off_site(console: ConsoleUnderTest, target: str) -> None:
    with httpx.Client(base_url=console.url, follow_redirects=False) as browser:
        answer = browser.post("/login", data={"token": console.tokens[("acme", "viewer")],
                                              "next": target, "csrf": _form_csrf(browser)})
    assert answer.headers["location"] == "/"


def test_another_tenants_pages_are_not_found(console: ConsoleUnderTest,
                                             globex_agent: tuple[httpx.Client, str]) -> None:
    browser, csrf = globex_agent
    case_id = console.case_id("acme")
    with console.client("acme", "viewer") as api:
        acme_devices = {d["device_id"] for d in api.get("/api/v1/devices").json()["items"]}
    with console.client("globex", "viewer") as api:
        globex_devices = {d["device_id"] for d in api.get("/api/v1/devices").json()["items"]}
    acme_only = sorted(acme_devices - globex_devices)[0]
    assert browser.get(f"/cases/{case_id}").status_code == 404
    assert browser.get(f"/devices/{acme_only}").status_code == 404
    for action in ("acknowledge", "note", "assign", "resolve"):
        answer = browser.post(f"/cases/{case_id}/{action}", data={"csrf": csrf, "text": "x"})
        assert answer.status_code == 404, action
    queue = browser.get("/?status=all").text
    assert "acme" not in queue and f"/cases/{case_id}\"" not in queue


def test_actions_need_the_forms_csrf_secret_and_an_agent(console: ConsoleUnderTest) -> None:
    case_id = console.case_id("globex")
    browser, csrf = _login(console, "globex", "agent")
    try:
        for data in ({}, {"csrf": "forged"}, {"csrf": csrf + "x"}):
            answer = browser.post(f"/cases/{case_id}/note", data={**data, "text": "hi"})
            assert answer.status_code == 403, data
        answer = browser.post(f"/cases/{case_id}/note", data={"csrf": csrf, "text": "hi"})
        assert answer.status_code == 303 and answer.headers["location"] == f"/cases/{case_id}"
        assert "hi (by agent of globex)" in browser.get(f"/cases/{case_id}").text
        assert browser.post(f"/cases/{case_id}/delete", data={"csrf": csrf}).status_code == 404
        assert browser.post("/logout", data={"csrf": csrf}).status_code == 303
    finally:
        browser.close()
    viewer, csrf = _login(console, "globex", "viewer")
    try:
        page = viewer.get(f"/cases/{case_id}").text
        assert 'id="acknowledge"' not in page and "Add note" not in page
        answer = viewer.post(f"/cases/{case_id}/acknowledge", data={"csrf": csrf})
        assert answer.status_code == 403
    finally:
        viewer.close()


def test_pages_forbid_framing_and_foreign_scripts(
        globex_agent: tuple[httpx.Client, str]) -> None:
    browser, _ = globex_agent
    headers = browser.get("/fleet").headers
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(console: ConsoleUnderTest, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    """The console's login limiter on a clock the test moves (the default one is restored)."""
    clock = _Clock()
    monkeypatch.setattr(console.ctx, "login_limiter", LoginLimiter(clock=clock))
    yield clock


def _from(console: ConsoleUnderTest, address: str) -> httpx.Client:
    """A browser whose connections come from ``address`` (any of 127.0.0.0/8)."""
    return httpx.Client(base_url=console.url, follow_redirects=False,
                        transport=httpx.HTTPTransport(local_address=address))


def test_failed_logins_are_limited_per_address(console: ConsoleUnderTest,
                                               limited: _Clock) -> None:
    """Issue 18.7: five failures a minute, then 429 (even for the right token) until the
    minute is over; another address is not affected."""
    good = console.tokens[("acme", "viewer")]
    with _from(console, "127.0.0.2") as attacker, _from(console, "127.0.0.3") as other:
        for attempt in range(5):
            answer = attacker.post("/login", data={
                "token": f"fw_00000000000{attempt}_wrongwrongwrongwrongwrong",
                "csrf": _form_csrf(attacker)})
            assert answer.status_code == 401, attempt
        blocked = attacker.post("/login", data={"token": good, "csrf": _form_csrf(attacker)})
        assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
        assert blocked.headers["retry-after"] == "60"
        assert other.post("/login", data={"token": good,
                                          "csrf": _form_csrf(other)}).status_code == 303
        limited.now += 30.0
        assert attacker.post("/login", data={
            "token": good, "csrf": _form_csrf(attacker)}).headers["retry-after"] == "30"
        limited.now += 30.0
        answer = attacker.post("/login", data={"token": good, "csrf": _form_csrf(attacker)})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_the_login_form_needs_its_own_csrf_pair(console: ConsoleUnderTest) -> None:
    """Issue 18.7: a login posted by another site's page (no login cookie, or a forged field)
    is refused, so nobody can be logged into an attacker's tenant."""
    token = console.tokens[("globex", "agent")]
    with httpx.Client(base_url=console.url, follow_redirects=False) as victim:
        assert victim.post("/login", data={"token": token}).status_code == 403
        assert victim.post("/login", data={"token": token, "csrf": "forged"}).status_code == 403
        csrf = _form_csrf(victim)
        assert victim.post("/login", data={"token": token,
                                           "csrf": csrf + "x"}).status_code == 403
        assert "forewarn_session" not in victim.cookies
        # another browser's valid pair is no good without its cookie
        with httpx.Client(base_url=console.url, follow_redirects=False) as attacker:
            theirs = _form_csrf(attacker)
        assert victim.post("/login", data={"token": token,
                                           "csrf": theirs}).status_code == 403
        answer = victim.post("/login", data={"token": token, "csrf": _form_csrf(victim)})
        assert answer.status_code == 303


def test_device_lifecycle_and_remote_config_show_on_the_device(console: ConsoleUnderTest) -> None:
    """What core's lifecycle listener keeps (rules.lifecycle's devices table) reaches the API
    and the pages: online/offline and why, the desired and the reported config (issue 16.3)."""
    import json

    from rules.lifecycle import DeviceBook

    book = DeviceBook(console.ctx.engine)

    def lost(row: object) -> None:
        row.state, row.reason, row.since, row.last_seen = (  # type: ignore[attr-defined]
            "offline", "connection_lost", 1_767_225_600.0, 1_767_225_500.0)
        row.product = "heat_pump"  # type: ignore[attr-defined]
        row.desired_json = json.dumps({"revision": 2,  # type: ignore[attr-defined]
                                       "batch_max_samples": 120})
        row.reported_json = json.dumps({  # type: ignore[attr-defined]
            "status": "applied", "revision": 2, "reason": None,
            "applied": {"batch_max_samples": 120, "sample_period_s": 60.0}})

    book.update("acme", "hp-lifecycle", lost)
    with console.client("acme", "viewer") as api:
        detail = api.get("/api/v1/devices/hp-lifecycle").json()
    assert (detail["connection"], detail["connection_reason"]) == ("offline", "connection_lost")
    assert detail["desired_config"] == {"revision": 2, "batch_max_samples": 120}
    assert detail["reported_config"]["applied"]["sample_period_s"] == 60.0
    browser, _ = _login(console, "acme", "viewer")
    try:
        page = browser.get("/devices/hp-lifecycle").text
        fleet = browser.get("/fleet").text
    finally:
        browser.close()
    assert "offline (connection lost)" in page and 'id="remote-config"' in page
    assert "offline (connection lost)" in fleet
    # another tenant does not see it
    with console.client("globex", "viewer") as api:
        assert api.get("/api/v1/devices/hp-lifecycle").status_code == 404
