"""Feedback that changes behaviour (issue 20.2), through the real console server and the rules
pipeline a service runs over the same case database: a false alarm resolved in the console raises
the rule for that device only (the same pattern no longer opens a case there, another device's
still does), survives a restart of the pipeline, is listed on the device page and in the API,
and undoing it restores the rule. Confirmed faults raise nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.feedback import levels
from rules.model import parse_rules
from rules.pipeline import RulesPipeline
from tests.integration.console.conftest import ConsoleUnderTest
from tests.integration.console.test_console_web import _login

pytestmark = pytest.mark.integration

RULES = parse_rules("""
rules:
  - name: fb_hot
    product: heat_pump
    score_at_least: 0.85
    for: 10m
    resolve_after: 10m
cases:
  reopen_within: 1h
  escalate_after: 3650d   # this pipeline ticks over the shared console's cases: escalate none
""")
#: above the rule's 0.85, below 0.85 + one step (0.05)
PATTERN = [0.88] * 15


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _feed(pipeline: RulesPipeline, clock: _Clock, device: str, scores: list[float]) -> None:
    n = len(scores)
    t = clock.now + 60.0 + np.arange(n, dtype=np.float64) * 60.0
    batch = ScoredBatch("acme", device, "heat_pump", ("discharge_temp",), t,
                        np.full((n, 1), 50.0), np.array(scores, dtype=np.float64)[:, None])
    clock.now = float(t[-1])
    pipeline.handle(batch)


def _episode(pipeline: RulesPipeline, clock: _Clock, device: str) -> int:
    """The pattern, then a recovery long enough for the alarm to resolve: how many cases it
    opened or reopened."""
    before = pipeline.stats.opened + pipeline.stats.reopened
    _feed(pipeline, clock, device, PATTERN)
    changed = pipeline.stats.opened + pipeline.stats.reopened - before
    _feed(pipeline, clock, device, [0.1] * 15)
    pipeline.tick(clock.now)
    return changed


def _case_of(pipeline: RulesPipeline, device: str) -> int:
    found = [c.id for c in pipeline.opened if c.device_id == device]
    assert found, f"no case opened for {device}"
    return found[-1]


def test_a_false_alarm_raises_the_rule_for_that_device_until_undone(
        console: ConsoleUnderTest) -> None:
    engine, stamp = console.ctx.engine, time.monotonic_ns()
    noisy, other = f"hp-fb-noisy-{stamp}", f"hp-fb-other-{stamp}"
    clock = _Clock(console.ctx.clock() + 3600.0)
    pipeline = RulesPipeline(RULES, CaseBook(engine, clock=clock))
    _feed(pipeline, clock, noisy, PATTERN)
    case_id = _case_of(pipeline, noisy)
    with console.client("acme", "agent") as api:
        answer = api.post(f"/api/v1/cases/{case_id}/resolve", json={
            "outcome": "false_alarm", "reason": "installation", "comment": "sun on the sensor"})
        assert answer.status_code == 200, answer.text
        assert [e["kind"] for e in answer.json()["timeline"]][-2:] == ["resolved", "feedback"]
        [adjustment] = api.get(f"/api/v1/devices/{noisy}/feedback").json()
        assert adjustment["rule"] == "fb_hot" and adjustment["raise_by"] == pytest.approx(0.05)
        assert adjustment["active"] and adjustment["created_by"] == "agent of acme"
        assert adjustment["case_id"] == case_id
        assert adjustment["expires_at"] == pytest.approx(console.ctx.clock() + 30 * 86400.0)
    _feed(pipeline, clock, noisy, [0.1] * 15)  # the device calms down; the alarm resolves

    # the service restarts: the raise is read back from the case database
    pipeline = RulesPipeline(RULES, CaseBook(engine, clock=clock))
    assert _episode(pipeline, clock, noisy) == 0, "the same pattern opened a case again"
    assert _episode(pipeline, clock, other) == 1, "another device must still open one"

    # a confirmed fault never loosens anything
    _feed(pipeline, clock, other, PATTERN)  # back within reopen_within: the case reopens
    with console.client("acme", "agent") as api:
        confirmed = api.post(f"/api/v1/cases/{_case_of(pipeline, other)}/resolve", json={
            "outcome": "confirmed", "category": "refrigerant_leak"})
        assert confirmed.status_code == 200, confirmed.text
        assert api.get(f"/api/v1/devices/{other}/feedback").json() == []
    assert ("fb_hot", "acme", other) not in levels(engine, clock.now).device
    _feed(pipeline, clock, other, [0.1] * 15)

    # the device page lists it with who and why, and undoes it
    browser, csrf = _login(console, "acme", "agent")
    try:
        page = browser.get(f"/devices/{noisy}").text
        assert "false alarm on case FW-" in page and "agent of acme" in page
        undone = browser.post(f"/devices/{noisy}/feedback/{adjustment['id']}/undo",
                              data={"csrf": csrf})
        assert undone.status_code == 303
        assert "undone by agent of acme" in browser.get(f"/devices/{noisy}").text
        again = browser.post(f"/devices/{noisy}/feedback/{adjustment['id']}/undo",
                             data={"csrf": csrf})
        assert again.status_code == 409
    finally:
        browser.close()
    pipeline.tick(clock.now)  # the running service picks the undo up at its next tick
    assert _episode(pipeline, clock, noisy) == 1, "undo must restore the rule"


def test_viewers_cannot_undo_and_other_tenants_do_not_see_adjustments(
        console: ConsoleUnderTest) -> None:
    engine, stamp = console.ctx.engine, time.monotonic_ns()
    device = f"hp-fb-view-{stamp}"
    clock = _Clock(console.ctx.clock() + 3600.0)
    pipeline = RulesPipeline(RULES, CaseBook(engine, clock=clock))
    _feed(pipeline, clock, device, PATTERN)
    with console.client("acme", "agent") as api:
        api.post(f"/api/v1/cases/{_case_of(pipeline, device)}/resolve",
                 json={"outcome": "false_alarm", "reason": "usage"}).raise_for_status()
        [adjustment] = api.get(f"/api/v1/devices/{device}/feedback").json()
    undo = f"/api/v1/devices/{device}/feedback/{adjustment['id']}/undo"
    with console.client("acme", "viewer") as viewer:
        assert viewer.post(undo).status_code == 403
    with console.client("globex", "agent") as stranger:
        assert stranger.get(f"/api/v1/devices/{device}/feedback").status_code == 404
        assert stranger.post(undo).status_code == 404
    assert ("fb_hot", "acme", device) in levels(engine, clock.now).device


def test_a_weekly_false_case_resolved_twice_in_the_console_is_learned_as_normal(
        console: ConsoleUnderTest) -> None:
    """A score of 1 (no raised level quiets it) at the same time two weeks running, each case
    over by itself before an agent gives it its outcome: the second teaches a weekly quiet
    window, listed in the API and on the device page; the third week opens no case and renews
    the window."""
    engine, stamp = console.ctx.engine, time.monotonic_ns()
    device = f"hp-fb-sauna-{stamp}"
    clock = _Clock(console.ctx.clock() + 3600.0)
    pipeline = RulesPipeline(RULES, CaseBook(engine, clock=clock))
    sauna = [1.0] * 30
    with console.client("acme", "agent") as api:
        for _week in range(2):
            _feed(pipeline, clock, device, sauna)
            _feed(pipeline, clock, device, [0.1] * 15)  # over: the case resolved itself
            case_id = _case_of(pipeline, device)
            answer = api.post(f"/api/v1/cases/{case_id}/resolve", json={
                "outcome": "false_alarm", "reason": "installation"})
            assert answer.status_code == 200, answer.text
            kinds = [e["kind"] for e in answer.json()["timeline"]]
            assert "labelled" in kinds and kinds[-1] == "feedback", kinds
            clock.now += 7 * 86400.0 - 45 * 60.0  # the same time next week
            pipeline.tick(clock.now)
        listed = api.get(f"/api/v1/devices/{device}/feedback").json()
    windows = [a for a in listed if a["window_s"] is not None]
    assert len(windows) == 1 and windows[0]["window_s"] == pytest.approx(8 * 3600.0)
    assert windows[0]["active"] and "quiet" in windows[0]["reason"]
    before = pipeline.stats.opened + pipeline.stats.reopened
    _feed(pipeline, clock, device, sauna)
    assert pipeline.stats.opened + pipeline.stats.reopened == before, "learned as normal"
    # the pattern came back while quiet: the window is renewed, listed as such
    with console.client("acme", "agent") as api:
        (renewed,) = [a for a in api.get(f"/api/v1/devices/{device}/feedback").json()
                      if a["window_s"] is not None]
    assert renewed["renewals"] == 1 and renewed["renewed_at"] is not None
    assert renewed["expires_at"] > windows[0]["expires_at"]
    browser, _ = _login(console, "acme", "agent")
    try:
        page = browser.get(f"/devices/{device}").text
        assert "quiet 8 h weekly" in page and "renewed 1×" in page
    finally:
        browser.close()
