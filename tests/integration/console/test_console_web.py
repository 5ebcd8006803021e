"""The web pages over plain HTTP: login and logout, CSRF, roles, tenant isolation, headers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration


def _login(console: ConsoleUnderTest, tenant: str, role: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    answer = browser.post("/login", data={"token": console.tokens[(tenant, role)], "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = browser.get("/")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return browser, match.group(1)


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
        refused = anonymous.post("/login", data={"token": "fw_nope"})
        assert refused.status_code == 401 and "not valid" in refused.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"],
                         ids=["scheme-relative", "absolute", "backslash"])
def test_login_never_redirects_off_site(console: ConsoleUnderTest, target: str) -> None:
    with httpx.Client(base_url=console.url, follow_redirects=False) as browser:
        answer = browser.post("/login", data={"token": console.tokens[("acme", "viewer")],
                                              "next": target})
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
