"""Table-driven and scenario tests of the pipeline's case policies: grouping, silences and
maintenance windows, inhibition, quiet hours, open tickets, the daily budget, escalation,
auto-resolve and reopen, restarts and rule edits, and the customer's language."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.db import NoticeRow, connect
from rules.model import RuleSet, parse_rules
from rules.pipeline import RulesPipeline
from rules.registry import parse_registry

DAY = 86400.0
T0 = 10 * DAY + 12 * 3600.0  # a Sunday, 12:00 UTC


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    yield engine
    engine.dispose()


REGISTRY = parse_registry("""
customers:
  - {id: kim, name: Kim, timezone: Asia/Seoul, language: ko, quiet_hours: "21:00-08:00"}
  - {id: coop, name: Co-op, notices_per_day: 2}
devices:
  hp-kim: {customer: kim}
  hp-1: {customer: coop}
  hp-2: {customer: coop}
  hp-3: {customer: coop}
""")


def rules_yaml(extra_rules: str = "", tail: str = "") -> RuleSet:
    return parse_rules(f"""
rules:
  - name: circuit
    score_at_least: 0.8
    fields: [a, b]
    for: 0s
    resolve_after: 10m
    group: circuit
    inhibited_by: [offline]
  - name: forecast
    when: {{value: {{field: b, above: 100}}}}
    for: 0s
    group: circuit
    severity: critical
  - name: offline
    no_data: 30m
    notify_customer: false
{extra_rules}
{tail}
""")


def make_pipeline(engine: Engine, clock: Clock, rules: RuleSet | None = None) -> RulesPipeline:
    book = CaseBook(engine, channel="terminal", clock=clock)
    return RulesPipeline(rules or rules_yaml(), book, registry=REGISTRY)


def feed(pipeline: RulesPipeline, clock: Clock, device: str, scores: list[float],
         values: list[float] | None = None, t0: float | None = None) -> None:
    t0 = clock.now if t0 is None else t0
    n = len(scores)
    s = np.column_stack([scores, [0.0] * n])
    v = np.column_stack([[1.0] * n, values or [1.0] * n])
    t = t0 + np.arange(n, dtype=np.float64) * 60.0
    batch = ScoredBatch("acme", device, "heat_pump", ("a", "b"), t, v, s)
    clock.now = float(batch.t[-1])
    pipeline.handle(batch)


def notices(engine: Engine, audience: str | None = None) -> list[NoticeRow]:
    with Session(engine) as session:
        query = select(NoticeRow).order_by(NoticeRow.id)
        if audience:
            query = query.where(NoticeRow.audience == audience)
        return list(session.scalars(query))


def test_two_rules_of_one_group_share_one_case(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-1", [0.9, 0.9], values=[50.0, 120.0])
    [case] = pipe.casebook.cases()
    assert case.rules == "circuit,forecast"
    assert [e.kind for e in pipe.casebook.timeline(case.id)] == ["opened", "customer notice",
                                                                  "joined"]
    assert (pipe.stats.opened, pipe.stats.joined) == (1, 1)
    assert len(notices(engine, "team")) == 1 and len(notices(engine, "customer")) == 1


SILENCES = [
    pytest.param("silences:\n  - {name: w, start: '1970-01-11T00:00:00Z', "
                 "end: '1970-01-12T00:00:00Z'}", True, id="one-off-covers"),
    pytest.param("silences:\n  - {name: w, start: '1970-01-12T00:00:00Z', "
                 "end: '1970-01-13T00:00:00Z'}", False, id="one-off-later"),
    pytest.param("silences:\n  - {name: w, hours: '11:00-13:00', weekdays: [sun], "
                 "timezone: UTC}", True, id="recurring-sunday-noon"),
    pytest.param("silences:\n  - {name: w, hours: '11:00-13:00', weekdays: [mon], "
                 "timezone: UTC}", False, id="recurring-other-day"),
    pytest.param("silences:\n  - {name: w, hours: '11:00-13:00', timezone: Asia/Seoul}",
                 False, id="recurring-in-seoul-time-misses"),
    pytest.param("silences:\n  - {name: w, kind: silence, devices: ['hp-*'], rules: [circuit],"
                 " start: '1970-01-01T00:00:00Z', end: '2100-01-01T00:00:00Z'}", True,
                 id="silence-by-device-pattern"),
    pytest.param("silences:\n  - {name: w, customers: [kim], start: '1970-01-01T00:00:00Z', "
                 "end: '2100-01-01T00:00:00Z'}", False, id="silence-other-customer"),
]


@pytest.mark.parametrize(("silences", "silenced"), SILENCES)
def test_silences_and_maintenance_windows(engine: Engine, silences: str,
                                          silenced: bool) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules_yaml(tail=silences))
    feed(pipe, clock, "hp-1", [0.9])
    assert (len(pipe.casebook.cases()) == 0) is silenced
    assert (len(notices(engine)) == 0) is silenced
    assert pipe.stats.silenced == int(silenced)


def test_offline_device_inhibits_its_sensor_rules(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-1", [0.1])
    pipe.tick(clock.now + 3600.0)
    [offline] = pipe.casebook.cases()
    assert offline.rule == "offline" and "no data" in offline.summary
    assert [n.audience for n in notices(engine)] == ["team"]  # offline: no customer notice
    assert pipe.inhibitor.inhibiting(pipe.rules.rules[0], "acme", "hp-1") == "offline"
    feed(pipe, clock, "hp-1", [0.1])  # back: the offline case resolves itself
    assert pipe.casebook.cases()[0].status == "resolved"
    assert pipe.inhibitor.inhibiting(pipe.rules.rules[0], "acme", "hp-1") is None


def test_power_loss_inhibits_the_sensor_rule_in_the_same_batch(engine: Engine) -> None:
    rules = parse_rules("""
rules:
  - {name: sensors, score_at_least: 0.8, for: 0s, inhibited_by: [power_lost]}
  - {name: power_lost, when: {value: {field: b, below: 0.5}}, for: 0s,
     notify_customer: false}
""")
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules)
    feed(pipe, clock, "hp-1", [0.9, 0.9], values=[0.0, 0.0])
    assert [c.rule for c in pipe.casebook.cases()] == ["power_lost"]
    assert (pipe.stats.inhibited, pipe.suppressed) == (1, [("sensors", "hp-1",
                                                            "inhibited by power_lost")])


def test_quiet_hours_delay_the_customer_not_the_team(engine: Engine) -> None:
    clock = Clock(T0 + 2 * 3600.0)  # 14:00 UTC = 23:00 in Seoul
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-kim", [0.9])
    team, customer = notices(engine, "team")[0], notices(engine, "customer")[0]
    assert team.next_attempt_at == 0.0
    # 08:00 Seoul = 23:00 UTC
    assert customer.next_attempt_at == T0 + 11 * 3600.0
    assert "히트펌프" in customer.subject and "토출" not in customer.body  # fields a/b: no words


def test_a_waiting_customer_notice_is_withdrawn_when_the_case_resolves(engine: Engine) -> None:
    clock = Clock(T0 + 2 * 3600.0)  # 23:00 in Seoul: the customer notice waits until 08:00
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-kim", [0.9])
    feed(pipe, clock, "hp-kim", [0.1] * 12)  # recovered and resolved within the night
    [case] = pipe.casebook.cases()
    [customer] = notices(engine, "customer")
    assert case.status == "resolved" and customer.status == "suppressed"
    assert "withdrawn" in [e.detail.split(":")[0] for e in pipe.casebook.timeline(case.id)]


def test_open_ticket_suppresses_the_customer_notice(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    pipe.casebook.add_ticket("coop", "hp-1")
    feed(pipe, clock, "hp-1", [0.9])
    [customer] = notices(engine, "customer")
    assert customer.status == "suppressed" and "open ticket" in (customer.last_error or "")
    assert "suppressed" in notices(engine, "team")[0].body


def test_daily_budget_per_customer(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    for device in ("hp-1", "hp-2", "hp-3"):
        feed(pipe, clock, device, [0.9])
    statuses = [n.status for n in notices(engine, "customer")]
    assert statuses == ["pending", "pending", "suppressed"]
    clock.now += DAY
    feed(pipe, clock, "hp-1", [0.1] * 12)  # resolves hp-1 …
    clock.now += 3 * DAY
    feed(pipe, clock, "hp-1", [0.9])  # … and a new case days later is within a fresh budget
    assert notices(engine, "customer")[-1].status == "pending"


def test_escalation_unless_acknowledged(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules_yaml(tail="cases: {escalate_after: 1h}"))
    feed(pipe, clock, "hp-1", [0.9])
    feed(pipe, clock, "hp-2", [0.9])
    first, second = pipe.casebook.cases()
    assert pipe.casebook.acknowledge(second.id, by="lee")
    pipe.tick(clock.now + 1700.0)
    assert pipe.stats.escalated == 0
    pipe.tick(clock.now + 3700.0)
    pipe.tick(clock.now + 7200.0)  # once
    escalated, acknowledged = pipe.casebook.case(first.id), pipe.casebook.case(second.id)
    assert escalated is not None and escalated.severity == "critical"
    assert acknowledged is not None and acknowledged.escalated_at is None
    escalations = [n.case_id for n in notices(engine, "team") if n.kind == "escalated"]
    assert escalations.count(first.id) == 1 and second.id not in escalations


def test_auto_resolve_then_reopen_within_z_then_new_case_after(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules_yaml(tail="cases: {reopen_within: 1d}"))
    feed(pipe, clock, "hp-1", [0.9])
    feed(pipe, clock, "hp-1", [0.1] * 5)
    assert pipe.casebook.cases()[0].status == "open"  # recovering, not yet 10 min
    feed(pipe, clock, "hp-1", [0.1] * 12)
    [case] = pipe.casebook.cases()
    assert case.status == "resolved" and case.open_key is None
    clock.now += 3600.0
    feed(pipe, clock, "hp-1", [0.9])
    [case] = pipe.casebook.cases()
    assert (case.status, case.reopened, pipe.stats.reopened) == ("open", 1, 1)
    feed(pipe, clock, "hp-1", [0.1] * 12)
    clock.now += 2 * DAY
    feed(pipe, clock, "hp-1", [0.9])
    assert [c.status for c in pipe.casebook.cases()] == ["resolved", "open"]
    kinds = [n.kind for n in notices(engine, "team")]
    assert kinds == ["opened", "resolved", "reopened", "resolved", "opened"]


def test_restart_neither_loses_nor_replays_alarms(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-1", [0.5, 0.9])
    # a new process: same database, and the rule's threshold was edited meanwhile
    edited = parse_rules(rules_yaml().model_dump_json(by_alias=True).replace(
        '"score_at_least":0.8', '"score_at_least":0.7'))
    again = make_pipeline(engine, clock, edited)
    assert again.evaluator.status("circuit", "acme", "hp-1") == "firing"
    feed(again, clock, "hp-1", [0.9, 0.9])
    assert len(again.casebook.cases()) == 1 and again.stats.alarms == 0
    feed(again, clock, "hp-1", [0.1] * 12)  # the restarted pipeline resolves the case
    assert again.casebook.cases()[0].status == "resolved"


def test_pending_survives_a_restart(engine: Engine) -> None:
    clock = Clock()
    rules = rules_yaml().model_copy()
    slow = parse_rules(rules.model_dump_json(by_alias=True).replace('"for":0.0', '"for":120.0'))
    assert slow.rules[0].for_s == 120.0
    pipe = make_pipeline(engine, clock, slow)
    feed(pipe, clock, "hp-1", [0.9, 0.9])
    again = make_pipeline(engine, clock, slow)
    feed(again, clock, "hp-1", [0.9], t0=clock.now + 60.0)
    assert again.stats.opened == 1


@pytest.mark.parametrize(("device", "language", "words"), [
    pytest.param("hp-kim", "ko", "고객지원팀", id="korean"),
    pytest.param("hp-1", "en", "Your support team", id="english"),
    pytest.param("hp-unknown", "en", "Your support team", id="unknown-device-default"),
])
def test_customer_language(engine: Engine, device: str, language: str, words: str) -> None:
    clock = Clock(T0 - 6 * 3600.0)  # 06:00 UTC: 15:00 in Seoul, no quiet hours anywhere
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, device, [0.9])
    [customer] = notices(engine, "customer")
    assert words in customer.body
    assert "FW-1" in customer.body


def test_record_alarm_outcomes_table(engine: Engine) -> None:
    clock = Clock()
    pipe = make_pipeline(engine, clock)
    feed(pipe, clock, "hp-1", [0.9])
    [fired] = [t for t in pipe.evaluator.evaluate(
        ScoredBatch("acme", "hp-2", "heat_pump", ("a", "b"), np.array([clock.now]),
                    np.ones((1, 2)), np.array([[0.9, 0.0]])), REGISTRY.lookup(
            "acme", "hp-2", "heat_pump")) if t.alarm is not None]
    assert fired.alarm is not None
    outcomes: list[Any] = [pipe.casebook.record_alarm(fired.alarm).kind for _ in range(3)]
    assert outcomes == ["opened", "duplicate", "duplicate"]


@pytest.mark.parametrize(("after_window", "cases"), [
    pytest.param([0.9], 1, id="still-firing-after-the-window-opens-a-case"),
    pytest.param([0.1] * 12, 0, id="over-during-the-window-nothing"),
])
def test_alarm_held_by_a_maintenance_window(engine: Engine, after_window: list[float],
                                            cases: int) -> None:
    # the window ends at 12:10 UTC on the test's Sunday
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules_yaml(
        tail="silences:\n  - {name: w, start: '1970-01-11T11:00:00Z', "
             "end: '1970-01-11T12:10:00Z'}"))
    feed(pipe, clock, "hp-1", [0.9] * 5)
    assert pipe.casebook.cases() == [] and pipe.stats.silenced == 1
    feed(pipe, clock, "hp-1", after_window, t0=T0 + 15 * 60.0)
    opened = pipe.casebook.cases()
    assert len(opened) == cases
    if cases:
        assert opened[0].opened_at >= T0 + 10 * 60.0  # not before the window ended


def test_alarm_held_by_an_inhibition_opens_when_the_inhibitor_clears(engine: Engine) -> None:
    rules = parse_rules("""
rules:
  - {name: sensors, score_at_least: 0.8, for: 0s, inhibited_by: [power_lost]}
  - {name: power_lost, when: {value: {field: b, below: 0.5}}, for: 0s, resolve_after: 0s,
     notify_customer: false}
""")
    clock = Clock()
    pipe = make_pipeline(engine, clock, rules)
    feed(pipe, clock, "hp-1", [0.9], values=[0.0])
    feed(pipe, clock, "hp-1", [0.9], values=[1.0], t0=clock.now + 60.0)
    assert sorted(c.rule for c in pipe.casebook.cases()) == ["power_lost", "sensors"]
