"""Fleet incidents (rules.incidents): which cases make one, and the promises kept whatever the
order of the cases: one incident per cohort and rule at a time, a case in one incident at
most, one team notice per incident, at most one customer message per device per incident,
and recording the same alarm again changes nothing."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.events import DetectorEvent, ScoredBatch
from forewarn.cli import main
from rules.cases import CaseBook
from rules.cohorts import Cohort, cohorts_of
from rules.db import (
    CaseRow,
    DeviceRow,
    IncidentCaseRow,
    IncidentFlagRow,
    IncidentRow,
    NoticeRow,
    connect,
)
from rules.errors import CaseStateError, RuleError
from rules.evaluate import Alarm
from rules.incidents import IncidentBook, IncidentPolicy
from rules.lifecycle import DeviceBook
from rules.model import Rule, parse_rules
from rules.pipeline import RulesPipeline
from rules.registry import CustomerRegistry, registry_from_dict

H = 3600.0
RULES = {name: Rule(name=name, score_at_least=0.8, notify_customer=True)
         for name in ("compressor", "pressure")}


def _registry(firmware: Sequence[str], batches: Sequence[str] = ()) -> CustomerRegistry:
    devices = {}
    for i, version in enumerate(firmware):
        devices[f"hp-{i}"] = {"customer": f"c{i}", "product": "heat_pump", "firmware": version,
                              **({"batch": batches[i]} if batches else {})}
    return registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(len(firmware))],
                               "devices": devices})


def _book(registry: CustomerRegistry, **policy: object) -> tuple[Engine, CaseBook]:
    engine = connect("sqlite://")
    incidents = IncidentBook(IncidentPolicy(**policy), registry)  # type: ignore[arg-type]
    return engine, CaseBook(engine, clock=lambda: 0.0, registry=registry, incidents=incidents)


def _alarm(device: str, at: float, rule: str = "compressor") -> Alarm:
    return Alarm(RULES[rule], "acme", device, "heat_pump", at - 600.0, at,
                 "compressor_current", 0.95, 12.0)


def _incidents(engine: Engine) -> list[tuple[str, str, list[str]]]:
    with Session(engine) as session:
        rows = session.scalars(select(IncidentRow).order_by(IncidentRow.id)).all()
        return [(row.cohort, row.rule, sorted(session.scalars(
            select(IncidentCaseRow.device_id).where(IncidentCaseRow.incident_id == row.id))))
            for row in rows]


NEW = ["2.6.0"] * 5 + ["2.5.3"] * 5


@pytest.mark.parametrize(("firmware", "alarms", "expected"), [
    pytest.param(NEW, [("hp-0", 0), ("hp-1", H), ("hp-2", 2 * H)],
                 [("heat_pump/firmware=2.6.0", "compressor", ["hp-0", "hp-1", "hp-2"])],
                 id="three-of-a-release-in-a-day"),
    pytest.param(NEW, [("hp-0", 0), ("hp-1", H), ("hp-2", 2 * H), ("hp-3", 30 * H)],
                 [("heat_pump/firmware=2.6.0", "compressor",
                   ["hp-0", "hp-1", "hp-2", "hp-3"])], id="a-later-device-joins"),
    pytest.param(NEW, [("hp-0", 0), ("hp-2", 2 * H), ("hp-1", H)],
                 [("heat_pump/firmware=2.6.0", "compressor", ["hp-0", "hp-1", "hp-2"])],
                 id="a-case-recorded-late-completes-the-cluster"),
    pytest.param(NEW, [("hp-0", 0), ("hp-2", 30 * H), ("hp-1", 6 * H)], [],
                 id="recorded-late-but-spread-over-more-than-the-window"),
    pytest.param(NEW, [("hp-0", 0), ("hp-1", H)], [], id="two-are-not-a-fleet"),
    pytest.param(NEW, [("hp-0", 0), ("hp-1", 20 * H), ("hp-2", 40 * H)], [],
                 id="spread-over-more-than-the-window"),
    pytest.param(NEW, [("hp-0", 0), ("hp-5", H), ("hp-1", 2 * H), ("hp-6", 3 * H)], [],
                 id="other-firmware-as-often"),
    pytest.param(["2.6.0"] * 10, [("hp-0", 0), ("hp-1", H), ("hp-2", 2 * H)], [],
                 id="the-whole-product-is-no-cohort"),
])
def test_which_cases_make_an_incident(firmware: list[str], alarms: list[tuple[str, float]],
                                      expected: list[tuple[str, str, list[str]]]) -> None:
    engine, book = _book(_registry(firmware))
    for device, at in alarms:
        book.record_alarm(_alarm(device, at))
    assert _incidents(engine) == expected
    engine.dispose()


def test_the_firmware_a_device_reports_wins_over_the_registry() -> None:
    engine, book = _book(_registry(["2.5.3"] * 10))
    def updated(row: DeviceRow) -> None:
        row.firmware, row.product = "2.6.0", "heat_pump"

    for i in range(4):  # four devices updated and say so in their status messages
        DeviceBook(engine).update("acme", f"hp-{i}", updated)
    for i in range(3):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    assert [(c, d) for c, _, d in _incidents(engine)] == [
        ("heat_pump/firmware=2.6.0", ["hp-0", "hp-1", "hp-2"])]
    engine.dispose()


def test_a_batch_inside_a_release_is_explained_by_the_release() -> None:
    batches = ["B1", "B1", "B1", "B2", "B2", "B3", "B3", "B3", "B4", "B4"]
    engine, book = _book(_registry(["2.6.0"] * 6 + ["2.5.3"] * 4, batches))
    for i, device in enumerate(("hp-0", "hp-1", "hp-3", "hp-2")):
        book.record_alarm(_alarm(device, i * H))
    assert [c for c, _, _ in _incidents(engine)] == ["heat_pump/firmware=2.6.0"]
    engine.dispose()


def _customer_messages(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(n.device_id for n in session.scalars(select(NoticeRow).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed")))


def test_held_customers_hear_once_a_person_decides() -> None:
    registry = _registry(NEW)
    engine, book = _book(registry, customers="hold")
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    assert _customer_messages(engine) == Counter()  # all held, the first ones too
    incidents = IncidentBook(registry=registry)
    assert incidents.decide(engine, 1, "message", "ana", 10 * H) == 4
    assert _customer_messages(engine) == Counter({f"hp-{i}": 1 for i in range(4)})
    with pytest.raises(CaseStateError, match="decided"):
        incidents.decide(engine, 1, "quiet", "bo", 11 * H)
    book.record_alarm(_alarm("hp-4", 12 * H))  # decided: a later device hears at once
    assert _customer_messages(engine)["hp-4"] == 1
    incidents.close(engine, 1, "ana", 13 * H)
    with pytest.raises(CaseStateError, match="closed already"):
        incidents.close(engine, 1, "ana", 13 * H)
    engine.dispose()


def test_a_quiet_decision_tells_nobody() -> None:
    registry = _registry(NEW)
    engine, book = _book(registry, hold_rules=("compressor",))
    for i in range(3):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    assert IncidentBook(registry=registry).decide(engine, 1, "quiet", "ana", 5 * H) == 0
    book.record_alarm(_alarm("hp-3", 6 * H))
    assert _customer_messages(engine) == Counter()
    engine.dispose()


# -- properties over any order of cases --------------------------------------------------------

_events = st.lists(st.tuples(st.integers(0, 9), st.sampled_from(sorted(RULES)),
                             st.floats(0.0, 72.0)), min_size=1, max_size=25)


def _invariants(engine: Engine) -> None:
    with Session(engine) as session:
        incidents = session.scalars(select(IncidentRow)).all()
        open_keys = Counter((i.cohort, i.rule) for i in incidents if i.status == "open")
        assert all(n == 1 for n in open_keys.values())
        links = session.execute(select(IncidentCaseRow.incident_id, IncidentCaseRow.case_id,
                                       IncidentCaseRow.device_id)).all()
        assert len({case for _, case, _ in links}) == len(links)
        notices = session.scalars(select(NoticeRow)).all()
        for incident in incidents:
            team = [n for n in notices if n.kind == "incident" and n.audience == "team"
                    and n.idempotency_key.startswith(f"incident-{incident.id}-")]
            assert len(team) == 1
            cases = {case: device for i, case, device in links if i == incident.id}
            told = Counter(cases[n.case_id] for n in notices if n.case_id in cases
                           and n.audience == "customer" and n.status != "suppressed")
            assert max(told.values(), default=0) <= 1, told
            # a case that joined the open incident as it opened did not tell the team on its
            # own (one that opened alone, before its rule's cluster in the cohort joined the
            # release's incident, told the team as any case does, as those before it did)
            trigger = team[0].case_id
            assert trigger is not None
            as_opened = {c for c, joined, opened in session.execute(
                select(IncidentCaseRow.case_id, IncidentCaseRow.joined_at, CaseRow.opened_at)
                .join(CaseRow, CaseRow.id == IncidentCaseRow.case_id)) if joined == opened}
            own = [n for n in notices if n.case_id in cases and n.case_id > trigger
                   and n.case_id in as_opened
                   and n.audience == "team" and n.kind == "opened" and n.status != "suppressed"]
            assert not own, [(n.case_id, n.idempotency_key) for n in own]


def _record_all(events: list[tuple[int, str, float]], twice: bool) -> Iterator[Engine]:
    engine, book = _book(_registry(NEW, ["B1", "B2"] * 5), min_devices=2)
    for device, rule, hours in sorted(events, key=lambda e: e[2]):
        for _ in range(2 if twice else 1):
            book.record_alarm(_alarm(f"hp-{device}", hours * H, rule))
    yield engine
    engine.dispose()


@settings(max_examples=30, deadline=None)
@given(_events)
def test_incidents_keep_their_promises_in_any_order(events: list[tuple[int, str, float]]
                                                    ) -> None:
    for engine in _record_all(events, twice=False):
        _invariants(engine)
        once = _incidents(engine)
    for engine in _record_all(events, twice=True):  # every alarm recorded again
        _invariants(engine)
        assert _incidents(engine) == once


@given(st.sampled_from(["model", "firmware", "batch", "region"]),
       st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9.\-]{1,12}", fullmatch=True))
def test_a_cohort_key_reads_back(dimension: str, product: str, value: str) -> None:
    from rules.registry import DeviceMeta

    meta = DeviceMeta("t", "d", product, "c", **{dimension: value})  # type: ignore[arg-type]
    cohort = cohorts_of(meta, dimensions=(dimension,))[0]  # type: ignore[arg-type]
    assert Cohort.parse(cohort.key) == cohort


@pytest.mark.parametrize("key", ["", "heat_pump/colour=red", "heat_pump/firmware=",
                                 "heat_pump/firmware"])
def test_a_wrong_cohort_key_is_a_rule_error(key: str) -> None:
    with pytest.raises(RuleError):
        Cohort.parse(key)


# -- incidents the peer detector's flags open ---------------------------------------------------

def _peer_flag(device: str, at: float, field: str = "vibration") -> DetectorEvent:
    return DetectorEvent("acme", device, "heat_pump", field, "peer", at, 0.9, 3.0,
                         f"{field} is unlike its peers'")


def _pipeline(registry: CustomerRegistry, rules: str,
              **policy: object) -> tuple[Engine, RulesPipeline]:
    engine, book = _book(registry, **policy)
    return engine, RulesPipeline(parse_rules(rules), book, registry=registry)


def _scored(device: str, at: float, score: float,
            events: tuple[DetectorEvent, ...] = ()) -> ScoredBatch:
    t = at + 60.0 * np.arange(40, dtype=np.float64)
    return ScoredBatch("acme", device, "heat_pump", ("vibration",), t, np.full((40, 1), 3.0),
                       np.full((40, 1), score), events)


BATCHES = ["B17"] * 5 + ["B10", "B11", "B12", "B13", "B14"]
WEAR = "rules: [{name: wear, product: heat_pump, score_at_least: 0.8, for: 0}]"


def test_flags_of_a_cohort_open_its_incident_before_its_cases() -> None:
    """Three devices of batch B17 flagged unlike their peers (the events core hands the rules
    pipeline) open the batch's incident; the team hears once, no customer yet. Their own
    cases join it later, each customer hears once, and a case of the same rule of another
    B17 device joins too; a device of another batch does not. (The count rule alone: in so
    small a fleet two flags of B17 would be improbable, below.)"""
    engine, pipeline = _pipeline(_registry(["2.5.3"] * 10, BATCHES), WEAR,
                                 few_flags_dimensions=())
    for i in range(3):  # healthy readings, each batch carrying one device's peer flag
        pipeline.handle(_scored(f"hp-{i}", i * H, 0.1, (_peer_flag(f"hp-{i}", i * H),)))
    assert _incidents(engine) == [("heat_pump/batch=B17", "unlike_peers", [])]
    with Session(engine) as session:
        incident = session.scalars(select(IncidentRow)).one()
        assert (incident.devices, incident.opened_at) == (3, 0.0)
        flagged = session.scalars(select(IncidentFlagRow.device_id).where(
            IncidentFlagRow.incident_id == incident.id)).all()
        assert sorted(flagged) == ["hp-0", "hp-1", "hp-2"]
        team = session.scalars(select(NoticeRow).where(NoticeRow.kind == "incident")).all()
        assert [(n.audience, n.case_id) for n in team] == [("team", None)]
        assert "hp-2" in team[0].body
    assert _customer_messages(engine) == Counter()
    for i, device in enumerate(("hp-0", "hp-1", "hp-3", "hp-5")):  # their own cases, later
        pipeline.handle(_scored(device, (10 + i) * H, 0.95))
    assert _incidents(engine) == [("heat_pump/batch=B17", "unlike_peers",
                                   ["hp-0", "hp-1", "hp-3"])]
    assert _customer_messages(engine) == Counter({"hp-0": 1, "hp-1": 1, "hp-3": 1, "hp-5": 1})
    with Session(engine) as session:
        kinds = Counter((n.device_id, n.kind) for n in session.scalars(select(NoticeRow).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed")))
    assert kinds[("hp-0", "incident")] == kinds[("hp-3", "incident")] == 1
    assert kinds[("hp-5", "opened")] == 1  # batch B10: its own case, its own notice
    engine.dispose()


@pytest.mark.parametrize(("batches", "flagged", "expected"), [
    pytest.param(BATCHES, ["hp-0", "hp-1"], [], id="two-flags-are-not-a-fleet"),
    pytest.param(BATCHES, ["hp-0", "hp-5", "hp-1", "hp-6"], [], id="other-batches-as-often"),
    pytest.param(["B17"] * 10, ["hp-0", "hp-1", "hp-2"], [], id="the-whole-product"),
    pytest.param(BATCHES, ["hp-0", "hp-1", "hp-2", "hp-3"],
                 [("heat_pump/batch=B17", "unlike_peers", [])], id="a-fourth-is-flagged-into-it"),
])
def test_which_flags_make_an_incident(batches: list[str], flagged: list[str],
                                      expected: list[tuple[str, str, list[str]]]) -> None:
    """The count of flagged devices (``min_devices`` and the lift), without the rate test of
    a few flags (below)."""
    engine, book = _book(_registry(["2.5.3"] * 10, batches), few_flags_dimensions=())
    for i, device in enumerate(flagged):
        book.record_flag(_peer_flag(device, i * H))
    assert _incidents(engine) == expected
    if expected:
        with Session(engine) as session:
            assert session.scalars(select(IncidentRow.devices)).one() == len(flagged)
    engine.dispose()


#: batch B17 is ten of the forty pumps; the other thirty come from six batches of five
FEW_BATCHES = ["B17"] * 10 + [f"B{i}" for i in range(6) for _ in range(5)]
_VIB, _TEMP = "vibration", "motor_temp"


@pytest.mark.parametrize(("flags", "expected"), [
    pytest.param([("hp-0", 100, _VIB), ("hp-1", 101, _VIB)], ["heat_pump/batch=B17"],
                 id="two-of-a-batch-on-one-field-the-product-quiet-for-a-week"),
    pytest.param([("hp-0", 100, _VIB), ("hp-1", 101, _TEMP)], [],
                 id="two-on-different-fields"),
    pytest.param([("hp-0", 100, _VIB), ("hp-1", 130, _VIB)], [], id="a-day-and-more-apart"),
    pytest.param([(f"hp-{10 + 5 * i}", 10 + 10 * i, _VIB) for i in range(6)]
                 + [("hp-0", 150, _VIB), ("hp-1", 151, _VIB)], [],
                 id="the-product-s-other-pumps-flagged-six-times-this-week"),
    pytest.param([(f"hp-{10 + 5 * i}", 10 + 10 * i, _VIB) for i in range(6)]
                 + [("hp-0", 250, _VIB), ("hp-1", 251, _VIB)], ["heat_pump/batch=B17"],
                 id="the-same-more-than-a-week-before"),
])
def test_two_flags_of_a_batch_make_its_incident_when_improbable(
        flags: list[tuple[str, float, str]], expected: list[str]) -> None:
    """Two devices of a batch flagged on one field within the window open the batch's
    incident when two of its ten are improbable (``few_flags_alpha``) at the rate the
    product's other devices were flagged over the past week: 1 in 211 device-days (none
    flagged) gives 0.001, 7 in 211 (six flagged) 0.04."""
    engine, book = _book(_registry(["2.5.3"] * 40, FEW_BATCHES))
    for device, at_h, field in flags:
        book.record_flag(_peer_flag(device, at_h * H, field))
    assert [cohort for cohort, _, _ in _incidents(engine)] == expected
    engine.dispose()


def test_a_flag_of_a_device_whose_own_case_is_open_is_no_cohort_evidence() -> None:
    """Devices with faults of their own are flagged too, after their rules opened cases: three
    such devices of one batch make no incident; a device flagged before its case does count."""
    engine, book = _book(_registry(["2.5.3"] * 10, BATCHES))
    for i in range(3):  # (a day and more apart: no incident of the cases; they stay open)
        book.record_alarm(_alarm(f"hp-{i}", i * 30 * H))
    engine2, book2 = _book(_registry(["2.5.3"] * 10, BATCHES))
    for i in range(3):
        book.record_flag(_peer_flag(f"hp-{i}", 70 * H + i * H))
        book2.record_flag(_peer_flag(f"hp-{i}", 70 * H + i * H))
    assert _incidents(engine) == []
    assert _incidents(engine2) == [("heat_pump/batch=B17", "unlike_peers", [])]
    engine.dispose()
    engine2.dispose()


def _wear_case(device: str, at_h: float, field: str = _VIB) -> Alarm:
    return Alarm(RULES["compressor"], "acme", device, "heat_pump", at_h * H - 600.0, at_h * H,
                 field, 0.95, 1.2)


@pytest.mark.parametrize(("events", "expected"), [
    pytest.param([("case", "hp-0", 100, _VIB), ("flag", "hp-1", 101, _VIB)],
                 [("heat_pump/batch=B17", "unlike_peers", ["hp-0"])],
                 id="a-case-then-another-device-s-flag"),
    pytest.param([("flag", "hp-1", 100, _VIB), ("case", "hp-0", 100.5, _VIB),
                  ("flag", "hp-0", 101, _VIB)],
                 [("heat_pump/batch=B17", "unlike_peers", ["hp-0"])],
                 id="a-flag-then-a-case-whose-device-is-flagged-after-it"),
    pytest.param([("case", "hp-0", 100, _TEMP), ("flag", "hp-1", 101, _VIB),
                  ("flag", "hp-0", 101.5, _VIB)], [], id="the-case-of-another-field"),
    pytest.param([("case", "hp-0", 100, _VIB), ("flag", "hp-1", 130, _VIB)], [],
                 id="the-case-a-day-and-more-before"),
    pytest.param([("flag", "hp-0", 99, _VIB), ("case", "hp-0", 100, _VIB),
                  ("flag", "hp-0", 101, _VIB)], [], id="one-device-flagged-and-cased-counts-once"),
    pytest.param([("case", "hp-10", 100, _VIB), ("flag", "hp-1", 101, _VIB)], [],
                 id="the-case-of-another-batch"),
    pytest.param([("case", "hp-0", 100, _VIB), ("case", "hp-1", 100.5, _VIB),
                  ("flag", "hp-0", 101, _VIB)], [], id="cases-with-no-device-counted-by-a-flag"),
])
def test_a_device_with_a_case_of_the_flagged_field_counts_once_in_a_few_flags_tally(
        events: list[tuple[str, str, float, str]],
        expected: list[tuple[str, str, list[str]]]) -> None:
    """A batch device whose case of the same field opened first (its flag is its case's, not
    recorded) is still the batch's evidence: it counts once, by its case, with another
    device's flag; its case joins the incident. A case of another field, or more than a window
    before, or of another batch does not count, a device flagged and cased is one, and cases
    alone (with a flag of a device of theirs) are the cases' to count (``min_devices``)."""
    engine, book = _book(_registry(["2.5.3"] * 40, FEW_BATCHES))
    for kind, device, at_h, field in events:
        if kind == "case":
            book.record_alarm(_wear_case(device, at_h, field))
        else:
            book.record_flag(_peer_flag(device, at_h * H, field))
    assert _incidents(engine) == expected
    engine.dispose()


def test_devices_gone_offline_together_make_an_incident_only_of_a_narrow_cohort() -> None:
    """Silent devices of one model (half the product) are chance; of one batch, a cause."""
    offline = Rule(name="offline", no_data=7200.0, notify_customer=False)
    registry = registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(20)],
                                   "devices": {f"hp-{i}": {
                                       "customer": f"c{i}", "product": "heat_pump",
                                       "model": "A" if i < 10 else "B",
                                       "batch": "B17" if i in (11, 12, 13) else f"B{i}"}
                                       for i in range(20)}})
    engine, book = _book(registry, dimensions=("model", "batch"))
    for i in (0, 1, 2, 11, 12, 13):
        book.record_alarm(Alarm(offline, "acme", f"hp-{i}", "heat_pump", i * 60.0, i * 60.0,
                                "", 0.0, 0.0, kind="no_data"))
    assert [(c, d) for c, _, d in _incidents(engine)] == [
        ("heat_pump/batch=B17", ["hp-11", "hp-12", "hp-13"])]
    engine.dispose()


def _regions() -> CustomerRegistry:
    """Twelve heat pumps: hp-0 to hp-3 in the south, the others north or east."""
    return registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(12)],
                               "devices": {f"hp-{i}": {
                                   "customer": f"c{i}", "product": "heat_pump",
                                   "region": "south" if i < 4 else ("north", "east")[i % 2]}
                                   for i in range(12)}})


def test_an_incident_of_a_region_holds_its_customer_notices() -> None:
    """Devices of one region moving together are most often the weather (a heat wave): one
    incident for the region, and its customers hear nothing until a person decides."""
    registry = _regions()
    engine, book = _book(registry)
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    assert [(c, d) for c, _, d in _incidents(engine)] == [
        ("heat_pump/region=south", ["hp-0", "hp-1", "hp-2", "hp-3"])]
    with Session(engine) as session:
        assert session.scalars(select(IncidentRow.customer_policy)).one() == "hold"
    # (the first cases' notices no channel took yet are held too)
    assert _customer_messages(engine) == Counter()
    assert IncidentBook(registry=registry).decide(engine, 1, "message", "ana", 5 * H) == 4
    assert _customer_messages(engine) == Counter({f"hp-{i}": 1 for i in range(4)})
    engine.dispose()


@pytest.mark.parametrize("own_fault_at", [pytest.param(-H, id="before-the-incident"),
                                          pytest.param(10 * H, id="after-it-opened")])
def test_a_region_incident_holds_only_its_shared_symptom(own_fault_at: float) -> None:
    """A south pump's own fault (another rule: a clogged filter during the heat wave) is not
    the region's symptom: its case stays out of the region's incident, before or after it
    opened, and its customer is told of it at once, while the heat wave's cases stay held."""
    engine, book = _book(_regions())
    alarms = [_alarm(f"hp-{i}", i * H) for i in range(4)]
    for alarm in sorted([*alarms, _alarm("hp-0", own_fault_at, rule="pressure")],
                        key=lambda a: a.fired_at):
        book.record_alarm(alarm)
    assert [(c, r, d) for c, r, d in _incidents(engine)] == [
        ("heat_pump/region=south", "compressor", ["hp-0", "hp-1", "hp-2", "hp-3"])]
    with Session(engine) as session:
        linked = session.scalars(select(IncidentCaseRow.case_id)).all()
        pressure = session.scalars(select(CaseRow).where(CaseRow.rule == "pressure")).one()
        assert pressure.id not in linked and pressure.customer_notified
        told = session.scalars(select(NoticeRow.kind).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed")).all()
    assert told == ["opened"]  # the filter's notice; the heat wave's four are held
    assert _customer_messages(engine) == Counter({"hp-0": 1})
    engine.dispose()


def test_incidents_show_lists_the_devices_in_it_by_a_flag_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three B17 pumps flagged unlike their peers open the batch's incident; hp-0's own case
    joins it later. ``forewarn incidents show`` lists that case, and hp-1 and hp-2 (no case
    yet) under their flags: device, detector, field and time, in text and in ``--json``."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    registry = _registry(["2.5.3"] * 10, BATCHES)
    engine = connect(url)
    book = CaseBook(engine, clock=lambda: 0.0, registry=registry,
                    incidents=IncidentBook(IncidentPolicy(), registry))
    for i in range(3):
        book.record_flag(_peer_flag(f"hp-{i}", i * H))
    book.record_alarm(_alarm("hp-0", 5 * H))
    engine.dispose()
    assert main(["incidents", "show", "1", "--json", "--db", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["device_id"] for c in shown["cases"]] == ["hp-0"]
    assert shown["flagged"] == [
        {"device_id": "hp-1", "detector": "peer", "field": "vibration", "at": H},
        {"device_id": "hp-2", "detector": "peer", "field": "vibration", "at": 2 * H}]
    assert main(["incidents", "show", "1", "--db", url]) == 0
    text = capsys.readouterr().out
    assert "2 devices flagged unlike peers, no case in the incident:" in text
    assert re.search(r"hp-2 +peer +vibration +1970-01-01 02:00 UTC", text)
    assert not re.search(r"hp-0 +peer", text)


def test_a_release_incident_takes_the_cohort_s_cases_of_its_members_other_rules() -> None:
    """A release's defect fires two rules: once the 2.6.0 incident of ``compressor`` holds
    hp-0's ``pressure`` case, hp-3's ``pressure`` case joins it (one defect, one incident),
    and a 2.5.3 pump's does not."""
    engine, book = _book(_registry(NEW))
    for i in range(3):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for device, at in (("hp-0", 4 * H), ("hp-3", 5 * H), ("hp-5", 6 * H)):
        book.record_alarm(_alarm(device, at, rule="pressure"))
    assert _incidents(engine) == [("heat_pump/firmware=2.6.0", "compressor",
                                   ["hp-0", "hp-0", "hp-1", "hp-2", "hp-3"])]
    engine.dispose()


def test_a_rule_the_region_s_devices_share_is_its_symptom_too() -> None:
    """A heat wave fires two rules: once three south pumps of the incident opened ``pressure``
    cases, the third one's joins it (held); the first two, a device's own until then, told
    their customers."""
    engine, book = _book(_regions())
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for i in range(3):
        book.record_alarm(_alarm(f"hp-{i}", (10 + i) * H, rule="pressure"))
    with Session(engine) as session:
        linked = session.execute(select(CaseRow.device_id, CaseRow.rule).join(
            IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
            CaseRow.rule == "pressure")).all()
    assert linked == [("hp-2", "pressure")]
    assert _customer_messages(engine) == Counter({"hp-0": 1, "hp-1": 1})
    engine.dispose()


# -- the weather's second symptom -----------------------------------------------------------------

def _regions_and_models() -> CustomerRegistry:
    """Twelve heat pumps: hp-0 to hp-4 in the south, the others north or east; hp-0, hp-1,
    hp-4, hp-5, hp-6 and hp-7 of model B, the others of model A."""
    model_b = {0, 1, 4, 5, 6, 7}
    return registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(12)],
                               "devices": {f"hp-{i}": {
                                   "customer": f"c{i}", "product": "heat_pump",
                                   "model": "B" if i in model_b else "A",
                                   "region": "south" if i < 5 else ("north", "east")[i % 2]}
                                   for i in range(12)}})


def test_the_heat_wave_s_second_symptom_joins_the_region_not_a_model() -> None:
    """The heat wave's second symptom (``pressure``) reaches model B's threshold with two
    south pumps and one north pump (hp-5, a fault of its own): the region explains model B's
    cases better than the model, so no model incident opens; once a third south pump (hp-4,
    not in the region's incident yet) opens a ``pressure`` case, it joins the region's held
    incident. hp-5's customer is told of its own fault; no customer is told twice."""
    engine, book = _book(_regions_and_models())
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for device, hours in (("hp-0", 10), ("hp-5", 11), ("hp-1", 12), ("hp-4", 13)):
        book.record_alarm(_alarm(device, hours * H, rule="pressure"))
    assert _incidents(engine) == [("heat_pump/region=south", "compressor",
                                   ["hp-0", "hp-1", "hp-2", "hp-3", "hp-4"])]
    with Session(engine) as session:
        linked = session.execute(select(CaseRow.device_id, CaseRow.rule).join(
            IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
            CaseRow.rule == "pressure")).all()
    assert linked == [("hp-4", "pressure")]
    # hp-0 and hp-1's pressure cases came before the region shared the symptom: their own
    assert _customer_messages(engine) == Counter({"hp-0": 1, "hp-1": 1, "hp-5": 1})
    engine.dispose()


def test_a_model_of_its_own_opens_its_incident_during_the_heat_wave() -> None:
    """The region explains a model's cases only when half of them are the region's: three
    north or east pumps of model B (and one south pump) with ``pressure`` cases open model B's
    incident while the south's heat wave incident is open."""
    engine, book = _book(_regions_and_models())
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for device, hours in (("hp-0", 10), ("hp-5", 11), ("hp-6", 12), ("hp-7", 13)):
        book.record_alarm(_alarm(device, hours * H, rule="pressure"))
    assert [(c, r) for c, r, _ in _incidents(engine)] == [
        ("heat_pump/region=south", "compressor"), ("heat_pump/model=B", "pressure")]
    engine.dispose()


def _record_weather(events: list[tuple[int, str, float]]) -> Engine:
    engine = connect("sqlite://")
    registry = _regions_and_models()
    now = [0.0]  # the incidents open when their case does
    book = CaseBook(engine, clock=lambda: now[0], registry=registry,
                    incidents=IncidentBook(IncidentPolicy(), registry))
    for device, rule, hours in sorted(events, key=lambda e: e[2]):
        now[0] = hours * H
        book.record_alarm(_alarm(f"hp-{device}", hours * H, rule))
    return engine


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(sorted(RULES)),
                          st.floats(0.0, 30.0)), min_size=1, max_size=20))
def test_a_region_s_weather_is_one_incident_in_any_order(events: list[tuple[int, str, float]]
                                                         ) -> None:
    """Whatever order the cases of two rules come in over pumps of two models and three
    regions: one open incident per region at a time (the weather is one cause, whatever
    symptoms it shows); no model incident opens over cases at least half of whose devices
    are in a region whose incident is open (the weather explains them better); and the
    promises of every incident (one per cohort and rule, a case in one, one team notice,
    at most one customer message per device)."""
    engine = _record_weather(events)
    _invariants(engine)
    registry = _regions_and_models()
    with Session(engine) as session:
        incidents = session.scalars(select(IncidentRow).order_by(IncidentRow.id)).all()
        opening = {i.id: set(session.scalars(select(CaseRow.device_id).join(
            IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
            IncidentCaseRow.incident_id == i.id, CaseRow.opened_at <= i.opened_at)))
            for i in incidents}
    regions = Counter(i.cohort for i in incidents if "/region=" in i.cohort)
    assert all(n == 1 for n in regions.values()), regions  # (none closes here)
    for incident in incidents:
        if "/model=" not in incident.cohort:
            continue
        for region in {i.cohort for i in incidents if "/region=" in i.cohort
                       and i.opened_at < incident.opened_at}:
            inside = [d for d in opening[incident.id] if registry.lookup(
                "acme", d, "heat_pump").region == region.split("=")[1]]
            assert 2 * len(inside) < len(opening[incident.id]), (incident.cohort, region)
    engine.dispose()


def test_the_weather_s_second_symptom_may_come_a_few_devices_a_day() -> None:
    """The heat wave lasts as long as its incident: south pumps whose ``pressure`` cases come
    a day apart (never three within one window) still share that symptom once three did
    since the region's incident began, and the third joins it."""
    engine, book = _book(_regions_and_models())
    for i in range(4):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for i, hours in enumerate((10, 30, 50)):
        book.record_alarm(_alarm(f"hp-{i}", hours * H, rule="pressure"))
    with Session(engine) as session:
        linked = session.execute(select(CaseRow.device_id, CaseRow.rule).join(
            IncidentCaseRow, IncidentCaseRow.case_id == CaseRow.id).where(
            CaseRow.rule == "pressure")).all()
    assert linked == [("hp-2", "pressure")]
    engine.dispose()


def test_a_release_s_second_rule_on_other_devices_joins_its_open_incident() -> None:
    """The 2.6.0 release's incident of ``compressor`` is open; two other 2.6.0 pumps then open
    ``pressure`` cases (enough for an incident of their own): one release, one incident."""
    engine, book = _book(_registry(NEW), min_devices=2)
    for i in range(2):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for i, device in enumerate(("hp-3", "hp-4")):
        book.record_alarm(_alarm(device, (5 + i) * H, rule="pressure"))
    assert _incidents(engine) == [("heat_pump/firmware=2.6.0", "compressor",
                                   ["hp-0", "hp-1", "hp-3", "hp-4"])]
    engine.dispose()


def test_a_model_s_second_rule_opens_its_own_incident() -> None:
    """A model's devices fail for many reasons: model B's ``pressure`` cluster opens its own
    incident beside model B's open ``compressor`` one."""
    engine, book = _book(_regions_and_models(), min_devices=2)
    for device, hours in (("hp-5", 0), ("hp-6", 1), ("hp-7", 5), ("hp-4", 6)):
        book.record_alarm(_alarm(device, hours * H, rule="compressor" if hours < 2
                                 else "pressure"))
    assert [(c, r) for c, r, _ in _incidents(engine)] == [
        ("heat_pump/model=B", "compressor"), ("heat_pump/model=B", "pressure")]
    engine.dispose()


# -- one fleet cause, one incident ------------------------------------------------------------

def test_flags_of_a_batch_join_its_open_incident_of_cases() -> None:
    """Batch B17's cases of ``compressor`` opened its incident; three other B17 pumps flagged
    unlike their peers later are the same worn part, not a second incident: the flags join
    the open one (the team is not told again), and a flagged pump's later case joins it."""
    engine, book = _book(_registry(["2.5.3"] * 10, ["B17"] * 6 + ["B10", "B11", "B12", "B13"]))
    for i in range(3):
        book.record_alarm(_alarm(f"hp-{i}", i * H))
    for i in range(3, 6):
        book.record_flag(_peer_flag(f"hp-{i}", (5 + i) * H))
    book.record_alarm(_alarm("hp-4", 12 * H, rule="pressure"))
    assert _incidents(engine) == [("heat_pump/batch=B17", "compressor",
                                   ["hp-0", "hp-1", "hp-2", "hp-4"])]
    with Session(engine) as session:
        incident = session.scalars(select(IncidentRow)).one()
        assert incident.devices == 6
        assert len(session.scalars(select(NoticeRow).where(
            NoticeRow.kind == "incident", NoticeRow.audience == "team")).all()) == 1
    engine.dispose()


def test_a_heat_wave_s_cluster_on_one_model_is_the_region_s_incident() -> None:
    """Three south pumps, all of model B, open cases together: model B (3 of 6) and the south
    (3 of 5) both stand out; the narrower region explains them (and holds the customers'
    notices), not the model whose devices fail for many reasons."""
    engine, book = _book(_regions_and_models())
    for i, device in enumerate(("hp-0", "hp-1", "hp-4")):
        book.record_alarm(_alarm(device, i * H))
    assert _incidents(engine) == [("heat_pump/region=south", "compressor",
                                   ["hp-0", "hp-1", "hp-4"])]
    engine.dispose()


def test_a_release_absorbs_the_model_incident_its_devices_opened_first() -> None:
    """Two 2.6.0 pumps of model A and a 2.5.3 one open cases first: model A stands out, the
    release (two) not yet. Three more 2.6.0 pumps then make the release's cluster: one
    release, one incident, the model's becomes the release's (the team is told once)."""
    registry = _release_and_models()
    engine, book = _book(registry)
    for i, device in enumerate(("hp-0", "hp-1", "hp-5", "hp-2", "hp-3", "hp-4")):
        book.record_alarm(_alarm(device, i * H))
    assert _incidents(engine) == [("heat_pump/firmware=2.6.0", "compressor",
                                   ["hp-0", "hp-1", "hp-2", "hp-3", "hp-4", "hp-5"])]
    _invariants(engine)
    with Session(engine) as session:
        assert len(session.scalars(select(NoticeRow).where(
            NoticeRow.kind == "incident", NoticeRow.audience == "team")).all()) == 1
    engine.dispose()


def test_a_south_pump_s_case_joins_the_heat_wave_not_its_model_s_incident() -> None:
    """Model B's incident of ``compressor`` (three north or east pumps) and the south's heat
    wave incident of it are both open: a south pump of model B opening a ``compressor`` case
    joins the region's (held), whose cause it shares, not the model's."""
    engine, book = _book(_regions_and_models())
    for device, hours in (("hp-0", 0), ("hp-2", 1), ("hp-3", 2), ("hp-5", 30), ("hp-6", 31),
                          ("hp-7", 32), ("hp-1", 33)):
        book.record_alarm(_alarm(device, hours * H))
    assert _incidents(engine) == [
        ("heat_pump/region=south", "compressor", ["hp-0", "hp-1", "hp-2", "hp-3"]),
        ("heat_pump/model=B", "compressor", ["hp-5", "hp-6", "hp-7"])]
    engine.dispose()


def test_a_batch_s_flags_absorb_the_model_incident_its_pumps_opened_first() -> None:
    """Two B17 pumps of model A and another model A pump open cases first: model A stands
    out, the batch (two) not. Three more B17 pumps flagged unlike their peers are the batch's
    worn part: the model's incident becomes the batch's, no second incident or team notice."""
    engine, book = _model_a_incident_of_b17_pumps()
    for i, device in enumerate(("hp-2", "hp-3", "hp-4")):
        book.record_flag(_peer_flag(device, (4 + i) * H))
    assert _incidents(engine) == [("heat_pump/batch=B17", "compressor",
                                   ["hp-0", "hp-1", "hp-5"])]
    with Session(engine) as session:
        assert session.scalars(select(IncidentRow.devices)).one() == 6
        assert len(session.scalars(select(NoticeRow).where(
            NoticeRow.kind == "incident", NoticeRow.audience == "team")).all()) == 1
    engine.dispose()


def test_an_absorbed_incident_is_the_release_s_from_when_it_absorbed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The team heard of model A's incident when it opened (hour 2), of the release only
    when the release's cluster absorbed it (hour 5): ``cohort_at`` says when it became the
    release's, and ``incidents show`` prints it; an incident opened as its cohort's has
    ``cohort_at == opened_at``."""
    registry = _release_and_models()
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    engine = connect(url)
    now = [0.0]
    book = CaseBook(engine, clock=lambda: now[0], registry=registry,
                    incidents=IncidentBook(IncidentPolicy(), registry))
    for i, device in enumerate(("hp-0", "hp-1", "hp-5", "hp-2", "hp-3", "hp-4")):
        now[0] = i * H
        book.record_alarm(_alarm(device, i * H))
    with Session(engine) as session:
        row = session.scalars(select(IncidentRow)).one()
        assert (row.cohort, row.opened_at, row.cohort_at) == (
            "heat_pump/firmware=2.6.0", 2 * H, 5 * H)
    engine.dispose()
    assert main(["incidents", "show", "1", "--db", url]) == 0
    assert ("heat_pump/firmware=2.6.0's incident since 1970-01-01 05:00 UTC"
            in capsys.readouterr().out)
    assert main(["incidents", "list", "--json", "--db", url]) == 0
    (view,) = json.loads(capsys.readouterr().out)
    assert (view["opened_at"], view["cohort_at"]) == (2 * H, 5 * H)


def _release_and_models() -> CustomerRegistry:
    return registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(10)],
                               "devices": {f"hp-{i}": {
                                   "customer": f"c{i}", "product": "heat_pump",
                                   "firmware": NEW[i],
                                   "model": "A" if i in (0, 1, 5, 6) else "B"}
                                   for i in range(10)}})


def _cohort_notices(engine: Engine) -> list[NoticeRow]:
    with Session(engine) as session:
        return list(session.scalars(select(NoticeRow).where(NoticeRow.kind == "cohort")))


def test_the_team_hears_once_that_the_model_s_incident_is_the_release_s(
        tmp_path: Path) -> None:
    """Model A's incident (hp-0, hp-1, hp-5) told the team of model A; when the release's
    cluster absorbs it, the team gets one more notice, that it is 2.6.0's now and how many
    devices it has, and no customer hears anything of it. A restart that records the same
    alarms again, or the absorption run again, queues no second one."""
    registry = _release_and_models()
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    engine = connect(url)
    now = [0.0]
    book = CaseBook(engine, clock=lambda: now[0], registry=registry,
                    incidents=IncidentBook(IncidentPolicy(), registry))
    order = ("hp-0", "hp-1", "hp-5", "hp-2", "hp-3", "hp-4")
    for i, device in enumerate(order[:-1]):
        now[0] = i * H
        book.record_alarm(_alarm(device, i * H))
    assert _cohort_notices(engine) == []
    told = _customer_messages(engine)
    now[0] = 5 * H
    book.record_alarm(_alarm("hp-4", 5 * H))  # the release's third: it absorbs model A's
    [notice] = _cohort_notices(engine)
    assert (notice.audience, notice.idempotency_key, notice.status, notice.tenant) == (
        "team", "incident-1-team-cohort", "pending", "acme")
    assert notice.subject == ("INC-1 is now heat_pump/firmware=2.6.0's incident: "
                              "6 devices, compressor")
    assert ("opened 1970-01-01 02:00 UTC as cohort heat_pump/model=A's, is now cohort "
            "heat_pump/firmware=2.6.0's, rule compressor: 6 devices." in notice.body)
    assert "Why: 3 of 5 devices of heat_pump/firmware=2.6.0 opened compressor" in notice.body
    # the customers: only hp-4's own case told its customer, as without the notice
    assert _customer_messages(engine) == told + Counter({"hp-4": 1})
    with Session(engine) as session:
        assert session.scalars(select(NoticeRow.kind).where(
            NoticeRow.audience == "customer").distinct()).all() in (
            ["opened"], ["opened", "incident"], ["incident", "opened"])
    assert [n.kind for n in IncidentBook.notices(engine, 1)].count("cohort") == 1
    engine.dispose()

    # a restart records the same alarms again: nothing new
    engine = connect(url)
    book = CaseBook(engine, clock=lambda: 6 * H, registry=registry,
                    incidents=IncidentBook(IncidentPolicy(), registry))
    for i, device in enumerate(order):
        book.record_alarm(_alarm(device, i * H))
    assert len(_cohort_notices(engine)) == 1
    # the absorption itself run again (a retried transaction): its key holds
    incidents = IncidentBook(IncidentPolicy(), registry)
    meta = registry.lookup("acme", "hp-4", "heat_pump")
    with Session(engine) as session:
        row = session.get(IncidentRow, 1)
        assert row is not None
        incidents._absorb(session, row, meta, Cohort.parse("heat_pump/firmware=2.6.0"),
                          "compressor", "again", 7 * H, {"hp-4"})
        session.commit()
    assert [n.subject for n in _cohort_notices(engine)] == [notice.subject]
    assert _customer_messages(engine) == told + Counter({"hp-4": 1})
    engine.dispose()


def test_the_team_hears_once_that_the_model_s_incident_is_the_batch_s() -> None:
    """The batch's flags absorb model A's incident (at hp-3's, two flagged pumps of B17 being
    improbable for chance): one notice to the team, naming the batch and the incident's five
    devices then (three with cases, two flagged); hp-4's flag, joining, tells nobody."""
    engine, book = _model_a_incident_of_b17_pumps()
    told = _customer_messages(engine)
    book.record_flag(_peer_flag("hp-2", 4 * H))
    assert _cohort_notices(engine) == []
    for i, device in enumerate(("hp-3", "hp-4")):
        book.record_flag(_peer_flag(device, (5 + i) * H))
        [notice] = _cohort_notices(engine)
        assert notice.subject == ("INC-1 is now heat_pump/batch=B17's incident: 5 devices, "
                                  "compressor")
    assert _customer_messages(engine) == told
    engine.dispose()


def test_a_model_s_incident_of_another_rule_takes_no_case_by_a_member_s_second_fault() -> None:
    """Model B's ``compressor`` incident (three north or east pumps) holds hp-5's later
    ``pressure`` case (its device is in it); hp-0, a south pump of model B, then opens a
    ``pressure`` case of a fault of its own: a model's devices fail for many reasons, so it
    does not join model B's incident as if ``pressure`` were the model's (it did, seed 2's
    release in the simulator), and its customer is told of it apart."""
    engine, book = _book(_regions_and_models())
    for device, hours in (("hp-5", 0), ("hp-6", 1), ("hp-7", 2)):
        book.record_alarm(_alarm(device, hours * H))
    book.record_alarm(_alarm("hp-5", 4 * H, rule="pressure"))
    book.record_alarm(_alarm("hp-0", 5 * H, rule="pressure"))
    assert _incidents(engine) == [("heat_pump/model=B", "compressor",
                                   ["hp-5", "hp-5", "hp-6", "hp-7"])]
    assert _customer_messages(engine)["hp-0"] == 1
    engine.dispose()


def test_a_release_does_not_absorb_a_model_s_incident_from_before_it_was_installed() -> None:
    """Model A's incident opened on three pumps running 2.5.3 (a cause of its own); a day
    later two of them install 2.6.0, and three model B pumps on 2.6.0 make the release's
    cluster. The model's pumps are the release's now, but their cases came before they ran it:
    no evidence of the release, so its incident opens of its own (the simulator's seed 5:
    a model's incident 27 h older than the release was absorbed by it)."""
    registry = registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(10)],
                                   "devices": {f"hp-{i}": {
                                       "customer": f"c{i}", "product": "heat_pump",
                                       "firmware": "2.5.3",
                                       "model": "A" if i in (0, 1, 5, 6) else "B"}
                                       for i in range(10)}})
    engine, book = _book(registry)
    for i, device in enumerate(("hp-0", "hp-1", "hp-5")):
        book.record_alarm(_alarm(device, i * H))

    def updated(row: DeviceRow) -> None:
        row.firmware, row.product = "2.6.0", "heat_pump"

    devices = DeviceBook(engine)
    for i in range(5):
        devices.record_firmware("acme", f"hp-{i}", "heat_pump", "2.5.3", 0.0)
        devices.update("acme", f"hp-{i}", updated)
        devices.record_firmware("acme", f"hp-{i}", "heat_pump", "2.6.0", 30 * H)
    for i, device in enumerate(("hp-2", "hp-3", "hp-4")):
        book.record_alarm(_alarm(device, (31 + i) * H))
    assert _incidents(engine) == [
        ("heat_pump/model=A", "compressor", ["hp-0", "hp-1", "hp-5"]),
        ("heat_pump/firmware=2.6.0", "compressor", ["hp-2", "hp-3", "hp-4"])]
    engine.dispose()


def test_a_heat_wave_after_a_model_s_burst_is_the_region_s_incident() -> None:
    """Model B's ``compressor`` incident opened from three north or east pumps in two hours
    and stays open; forty hours later south pumps of model B and A open ``compressor`` cases.
    The model's burst is over (in the day before, only south pumps): they are no evidence of
    the model's cause, so they do not join its incident, and the south's cluster opens the
    region's (seeds 2 and 12 of the simulator: a chance sensor incident of ``model=WP-A``
    took the heat wave's first south pumps)."""
    engine, book = _book(_regions_and_models())
    for device, hours in (("hp-5", 0), ("hp-6", 1), ("hp-7", 2), ("hp-0", 40), ("hp-1", 41),
                          ("hp-2", 42)):
        book.record_alarm(_alarm(device, hours * H))
    assert _incidents(engine) == [
        ("heat_pump/model=B", "compressor", ["hp-5", "hp-6", "hp-7"]),
        ("heat_pump/region=south", "compressor", ["hp-0", "hp-1", "hp-2"])]
    _invariants(engine)
    engine.dispose()


def test_a_region_does_not_absorb_a_model_s_incident_by_the_pumps_that_joined_it() -> None:
    """Model B's incident opened from three north pumps; three south pumps of model B join
    it later (its burst still stands out), so half its devices are the south's. The south's
    cluster of model A pumps then reaches the region's threshold: the model's incident is a
    north cause by the devices it opened with (the evidence of its cause), so the region
    opens its own incident rather than relabelling the north's as the heat wave (the
    simulator's seed 6: a chance majority of the absorbing cohort)."""
    south_b, north_b = {0, 1, 2}, {10, 11, 12}
    registry = registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(20)],
                                   "devices": {f"hp-{i}": {
                                       "customer": f"c{i}", "product": "heat_pump",
                                       "model": "B" if i in south_b | north_b else "A",
                                       "region": "south" if i < 8 else "north"}
                                       for i in range(20)}})
    engine, book = _book(registry)
    for device, hours in (("hp-10", 0), ("hp-11", 1), ("hp-12", 2), ("hp-0", 20), ("hp-1", 21),
                          ("hp-2", 22), ("hp-3", 30), ("hp-4", 31), ("hp-5", 32)):
        book.record_alarm(_alarm(device, hours * H))
    assert _incidents(engine) == [
        ("heat_pump/model=B", "compressor", ["hp-0", "hp-1", "hp-10", "hp-11", "hp-12", "hp-2"]),
        ("heat_pump/region=south", "compressor", ["hp-3", "hp-4", "hp-5"])]
    _invariants(engine)
    engine.dispose()


def _model_a_incident_of_b17_pumps() -> tuple[Engine, CaseBook]:
    """Ten heat pumps, hp-0…hp-4 of batch B17, hp-0, hp-1, hp-5 and hp-6 of model A; the cases
    of hp-0, hp-1 and hp-5 (an hour apart) open model A's incident."""
    registry = registry_from_dict({"customers": [{"id": f"c{i}"} for i in range(10)],
                                   "devices": {f"hp-{i}": {
                                       "customer": f"c{i}", "product": "heat_pump",
                                       "batch": "B17" if i < 5 else f"B{i}",
                                       "model": "A" if i in (0, 1, 5, 6) else "B"}
                                       for i in range(10)}})
    engine, book = _book(registry)
    for i, device in enumerate(("hp-0", "hp-1", "hp-5")):
        book.record_alarm(_alarm(device, i * H))
    return engine, book
