"""The firmware rollout view (issue 20): devices' status messages name their firmware through the
real lifecycle stage; the API, the console page and ``forewarn firmware list`` show each
tenant its own versions with the case rates before and after the moves."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import CaseRow
from tests.integration.console.conftest import ROOT, ConsoleUnderTest

pytestmark = pytest.mark.integration

H = 3600.0


def _expected(console: ConsoleUnderTest, move: float) -> tuple[int, int]:
    """Cases of the two moved devices before and after the move (counted here, directly)."""
    with Session(console.ctx.engine) as session:
        at = list(session.scalars(select(CaseRow.opened_at).where(
            CaseRow.tenant == "acme", CaseRow.device_id.in_(("hp-0000", "hp-0001")))))
    return sum(move - 24 * H <= t < move for t in at), sum(t >= move for t in at)


def test_api_shows_each_tenant_its_versions(rollout: tuple[ConsoleUnderTest, float]) -> None:
    console, move = rollout
    now = console.ctx.clock()
    with console.client("acme", "viewer") as api:
        view = api.get("/api/v1/firmware").json()
    versions = {(v["product"], v["firmware"]): v for v in view["versions"]}
    assert set(versions) == {("heat_pump", "2.5"), ("heat_pump", "2.6")}
    old, new = versions[("heat_pump", "2.5")], versions[("heat_pump", "2.6")]
    assert (old["devices"], old["moved"], new["devices"], new["moved"]) == (2, 0, 2, 2)
    before, after = _expected(console, move)
    assert (new["cases_before"], new["cases_after"]) == (before, after)
    assert new["device_days_before"] == pytest.approx(2 * 1.0)
    assert new["device_days_after"] == pytest.approx(2 * (now - move) / 86_400.0, abs=1e-3)
    assert new["rate_before"] == pytest.approx(1000.0 * before / 2.0, abs=0.01)
    with console.client("globex", "viewer") as api:
        view = api.get("/api/v1/firmware").json()
    assert [(v["firmware"], v["devices"]) for v in view["versions"]] == [("9.0", 2)]


def test_api_needs_a_token_and_checks_its_window(
        rollout: tuple[ConsoleUnderTest, float]) -> None:
    console, _ = rollout
    with httpx.Client(base_url=console.url) as anonymous:
        assert anonymous.get("/api/v1/firmware").status_code == 401
    with console.client("acme", "viewer") as api:
        assert api.get("/api/v1/firmware", params={"window_days": 0}).status_code == 422
        short = api.get("/api/v1/firmware", params={"window_days": 1 / 24}).json()
    new = next(v for v in short["versions"] if v["firmware"] == "2.6")
    assert new["device_days_before"] == pytest.approx(2 / 24, abs=1e-3)   # rounded to 3 places


def test_console_page_lists_the_versions(rollout: tuple[ConsoleUnderTest, float]) -> None:
    console, _ = rollout
    browser = httpx.Client(base_url=console.url, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
    assert csrf is not None
    answer = browser.post("/login", data={"token": console.tokens[("acme", "viewer")],
                                          "next": "/firmware", "csrf": csrf.group(1)})
    assert answer.status_code == 303
    page = browser.get("/firmware")
    assert page.status_code == 200
    rows = re.findall(r"<tr[^>]*>\s*<td>heat_pump</td><td>([^<]+)</td><td>(\d+)</td>", page.text)
    assert rows == [("2.5", "2"), ("2.6", "2")]
    assert "9.0" not in page.text
    browser.close()


def test_cli_prints_the_same_view(rollout: tuple[ConsoleUnderTest, float]) -> None:
    console, _ = rollout
    db = f"sqlite:///{console.out / 'cases.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "firmware", "list", "--db", db,
         "--tenant", "acme", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["tenant"] == "acme"
    assert [(v["firmware"], v["devices"], v["moved"]) for v in view["versions"]] == [
        ("2.5", 2, 0), ("2.6", 2, 2)]
    table = subprocess.run(
        [sys.executable, "-m", "forewarn.cli", "firmware", "list", "--db", db,
         "--tenant", "globex"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert table.returncode == 0, table.stderr
    assert re.search(r"heat_pump\s+9\.0\s+2\s+0", table.stdout)
