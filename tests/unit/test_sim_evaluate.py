"""``forewarn sim evaluate``: matching cases to ground truth (table-driven), the report, and a
small end-to-end run through the real core and rules pipelines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.calls import CallModel
from firmware_sim.fleet import FLEET_FAULTS, Fleet, FleetConfig
from firmware_sim.imperfections import Imperfections
from firmware_sim.truth import FaultTruth, read_jsonl
from forewarn.sim import (
    EvalOptions,
    SimCase,
    match_cases,
    report,
    run_evaluation,
    write_plots,
)
from forewarn.sim.incidents import SimIncident, incident_report

H = 3600.0
END = 100 * H


def _fault(device: str = "hp-1", visible: float | None = 10 * H,
           call: float | None = 20 * H, kind: str = "refrigerant_leak") -> FaultTruth:
    return FaultTruth(device, "heat_pump", kind, onset=5 * H, visible=visible, call=call,
                      course="slow")


def _case(at: float, device: str = "hp-1", customer: bool = True) -> SimCase:
    return SimCase(device, "heat_pump", "r", "warning", customer_notice=customer, noticed_at=at)


# (id, faults, cases, expected outcome of the first fault, lead time h, false cases)
MATCHING = [
    ("notified-before-call", [_fault()], [_case(8 * H)], "before_call", 12.0, 0),
    ("notified-after-call", [_fault()], [_case(21 * H)], "after_call", None, 0),
    ("no-case-missed", [_fault()], [], "missed", None, 0),
    ("team-only-case-is-not-a-notice", [_fault()], [_case(8 * H, customer=False)],
     "after_call", None, 0),
    ("team-case-then-notice", [_fault()], [_case(6 * H, customer=False), _case(9 * H)],
     "before_call", 11.0, 0),
    ("case-before-onset-is-false", [_fault()], [_case(4 * H)], "missed", None, 1),
    ("case-on-healthy-device-is-false", [_fault()], [_case(8 * H, device="hp-2")],
     "missed", None, 1),
    ("second-case-of-a-fault-is-not-false", [_fault()], [_case(8 * H), _case(30 * H)],
     "before_call", 12.0, 0),
    ("customer-never-calls", [_fault(call=None)], [_case(8 * H)], "no_call", None, 0),
    ("never-visible", [_fault(visible=None, call=None, kind="sensor_stuck")],
     [_case(8 * H, customer=False)], "no_call", None, 0),
    ("call-after-the-run", [_fault(call=END + H)], [], "call_after_horizon", None, 0),
    ("notice-before-a-call-after-the-run", [_fault(call=END + H)], [_case(50 * H)],
     "before_call", 51.0, 0),
]


@pytest.mark.parametrize(("faults", "cases", "outcome", "lead_h", "false"),
                         [m[1:] for m in MATCHING], ids=[m[0] for m in MATCHING])
def test_matching(faults: list[FaultTruth], cases: list[SimCase], outcome: str,
                  lead_h: float | None, false: int) -> None:
    result = match_cases(faults, cases, horizon_end=END)
    first = result.faults[0]
    assert first.outcome == outcome
    assert (None if first.lead_time_s is None else first.lead_time_s / H) == lead_h
    assert len(result.false_cases) == false


def test_no_data_cases_during_a_simulated_outage_are_offline_cases() -> None:
    silent = dataclasses.replace(_case(30 * H, device="hp-2", customer=False), no_data=True)
    unexplained = dataclasses.replace(_case(80 * H, device="hp-2", customer=False),
                                      no_data=True)
    outages = {"hp-2": np.array([[28 * H, 29 * H]])}
    result = match_cases([_fault()], [silent, unexplained], END, outages=outages)
    assert result.offline_cases == [silent]
    assert result.false_cases == [unexplained]


def test_notices_for_faults_never_visible_are_counted() -> None:
    stuck = _fault(visible=None, call=None, kind="sensor_stuck")
    result = match_cases([stuck], [_case(8 * H), _case(9 * H, customer=False)], END)
    assert result.notices_for_invisible == 1


def test_report_overall_and_per_kind() -> None:
    faults = [_fault("hp-1"), _fault("hp-2"), _fault("hp-3", kind="component_failure"),
              _fault("hp-4", visible=None, call=None, kind="sensor_stuck")]
    cases = [_case(8 * H, "hp-1"), _case(18 * H, "hp-2"), _case(30 * H, "hp-3"),
             _case(40 * H, "hp-9")]
    figures = report(match_cases(faults, cases, END), devices=10, days=5)
    assert figures["device_days"] == 50
    assert (figures["faults"], figures["faults_causing_calls"]) == (4, 3)
    assert figures["notified_before_call"] == 2
    assert figures["pct_notified_before_call"] == pytest.approx(66.7)
    assert figures["median_lead_time_h"] == 7.0
    assert figures["detected_after_call"] == 1 and figures["missed"] == 0
    assert figures["false_cases"] == 1
    assert figures["false_cases_per_1000_device_days"] == 20.0
    # issue 20's keys are there without fleet faults too
    assert (figures["fleet_faults_injected"], figures["fleet_faults_found_as_incident"]) == (0, 0)
    assert figures["by_fault"]["refrigerant_leak"]["pct_notified_before_call"] == 100.0
    assert figures["by_fault"]["component_failure"]["detected_after_call"] == 1
    json.dumps(figures)  # JSON-ready


EASY_RULES = """\
rules:
  - name: compressor_unusual
    product: heat_pump
    fields: [compressor_current]
    score_at_least: 0.1
    for: 0s
    severity: warning
    notify_customer: true
"""


def test_small_run_catches_an_obvious_fault_before_the_call(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "easy.yaml").write_text(EASY_RULES, encoding="utf-8")
    options = EvalOptions(
        devices=2, days=2.0, seed=3, products=("heat_pump",), fault_fraction=1.0,
        fault_kinds=("component_failure",), rules_dir=tmp_path / "rules",
        imperfections=Imperfections.none(), trace=1,
        call_model=CallModel(median_delay_s=8 * H, sigma=0.3, never_call_fraction=0.0),
    )
    evaluation = run_evaluation(options, out_dir=tmp_path)
    figures = evaluation.report
    assert figures["faults"] == figures["faults_causing_calls"] == 2
    assert figures["notified_before_call"] >= 1
    assert figures["samples"] == 2 * 2 * 1440
    assert read_jsonl(tmp_path / "ground_truth.jsonl") == evaluation.fleet.ground_truth
    pngs = write_plots(evaluation, tmp_path / "plots")
    assert [p.name for p in pngs][:1] == ["lead_time_by_fault.png"] and len(pngs) == 2


def test_shards_on_two_workers_give_the_same_report(tmp_path: Path) -> None:
    (tmp_path / "easy.yaml").write_text(EASY_RULES, encoding="utf-8")
    options = EvalOptions(devices=6, days=1.5, seed=5, products=("heat_pump",),
                          fault_fraction=0.5, rules_dir=tmp_path)
    one = run_evaluation(options).report
    two = run_evaluation(dataclasses.replace(options, workers=2)).report
    for key in ("run_time_s", "samples_per_s"):
        one.pop(key), two.pop(key)
    assert one == two


NOISY_RULES = """\
rules:
  - name: compressor_unusual
    product: heat_pump
    fields: [compressor_current]
    score_at_least: 0.2
    for: 0s
    resolve_after: 30m
    severity: warning
    notify_customer: true
"""


def test_simulated_agents_mark_false_cases_and_the_rules_learn(tmp_path: Path) -> None:
    """Healthy devices under a noisy rule (issue 20): every case is false; agents resolve each
    as a false alarm, which raises the rule for the device, so the second half opens fewer."""
    (tmp_path / "noisy.yaml").write_text(NOISY_RULES, encoding="utf-8")
    options = EvalOptions(devices=4, days=6.0, seed=5, products=("heat_pump",),
                          fault_fraction=0.0, rules_dir=tmp_path, batch_s=3600.0)
    alone = run_evaluation(options).report
    helped = run_evaluation(dataclasses.replace(options, agents=True)).report
    for figures in (alone, helped):
        halves = (figures["false_cases_per_1000_device_days_first_half"]
                  + figures["false_cases_per_1000_device_days_second_half"]) / 2
        assert halves == pytest.approx(figures["false_cases_per_1000_device_days"], abs=0.01)
    assert (alone["agents_mark_false_cases"], helped["agents_mark_false_cases"]) == (False, True)
    assert (helped["false_cases_per_1000_device_days_second_half"]
            < alone["false_cases_per_1000_device_days_second_half"])


def test_fleet_faults_hit_a_share_of_their_cohort_with_ground_truth() -> None:
    """A firmware release and a weak batch (issue 20): their devices carry the cohort's fault
    in the ground truth, onsets of a release within hours of it; other products are spared."""
    shared = FLEET_FAULTS
    config = FleetConfig(devices=60, seed=3, products=("heat_pump", "water_pump", "home_battery"),
                         horizon_s=20 * 86400.0, fault_fraction=0.0, fleet_faults=shared)
    truths = Fleet(config).ground_truth
    release = config.start + shared[0].at * config.horizon_s
    firmware = [t for t in truths if t.fleet_fault == shared[0].name]
    batch = [t for t in truths if t.fleet_fault == shared[1].name]
    heat = [t for t in truths if t.fleet_fault == shared[2].name]
    assert firmware and batch and heat and len(firmware) + len(batch) + len(heat) == len(truths)
    assert {t.product for t in firmware} == {"heat_pump"}
    assert {t.kind for t in batch} == {"bearing_wear"}
    assert all(release <= t.onset <= release + 6 * 3600.0 for t in firmware)
    # the heat wave: the south's water pumps (without a fault of their own), nobody calls
    south = {d.device_id for d in Fleet(config).devices
             if d.product.name == "water_pump" and d.cohort["region"] == "south"}
    assert {t.device_id for t in heat} <= south and {t.kind for t in heat} == {"heat_wave"}
    assert all(t.call is None and t.visible is None for t in heat)
    figures = report(match_cases(truths, [], config.end), devices=60, days=20.0)
    assert figures["fleet_faults_injected"] == 3
    assert figures["fleet_fault_devices"] == len(truths)
    assert figures["fleet_fault_devices_detected"] == 0
    plain = Fleet(dataclasses.replace(config, fleet_faults=())).ground_truth
    assert plain == []


def test_a_fleet_faults_cohort_is_wider_than_its_faulty_devices() -> None:
    """The release's cohort (devices that install it) and the weak batch hold every device the
    fault hits and more (a share of each cohort stays well); release devices report the new
    firmware at the release, batch devices carry the batch in the registry."""
    config = FleetConfig(devices=80, seed=3, products=("heat_pump", "water_pump"),
                         horizon_s=20 * 86400.0, fault_fraction=0.0, fleet_faults=FLEET_FAULTS)
    fleet = Fleet(config)
    release, batch, heat = FLEET_FAULTS
    for fault in (release, batch):
        cohort = {d.device_id for d in fleet.devices if fault.name in d.fleet_cohorts}
        hit = {t.device_id for t in fleet.ground_truth if t.fleet_fault == fault.name}
        assert hit and hit < cohort
    # the heat wave reaches every pump of the region, a fault of its own or not
    south = {d.device_id for d in fleet.devices
             if d.product.name == "water_pump" and d.cohort["region"] == heat.value}
    assert south == {d.device_id for d in fleet.devices if heat.name in d.fleet_cohorts}
    assert all(d.weather is not None for d in fleet.devices if d.device_id in south)
    for device in fleet.devices:
        in_release = release.name in device.fleet_cohorts
        assert (device.firmware_update == (release.released(config), release.value)) == in_release
        assert (device.cohort["batch"] == batch.value) == (batch.name in device.fleet_cohorts)


def test_a_fleet_fault_is_found_as_one_incident() -> None:
    """The firmware release's heat pumps fail within hours of it: the rules open one incident
    over ``heat_pump/firmware=2.6.0`` (registry and reported firmware, as in the field), and
    no customer hears twice of it."""
    options = EvalOptions(devices=24, days=4.0, seed=4, products=("heat_pump",),
                          fault_fraction=0.0,
                          rules_dir=Path(__file__).resolve().parents[2] / "config" / "rules",
                          imperfections=Imperfections.none(), fleet_faults=FLEET_FAULTS[:1])
    evaluation = run_evaluation(options)
    figures = evaluation.report
    assert figures["fleet_fault_devices"] >= 3
    assert figures["fleet_faults_found_as_incident"] == 1
    assert [i.cohort for i in evaluation.incidents] == ["heat_pump/firmware=2.6.0"]
    assert figures["max_customer_messages_per_device_per_incident"] <= 1
    assert figures["median_h_tenth_of_cohort_to_incident"] is not None


def test_hours_to_an_absorbed_incident_count_from_when_it_became_the_cohort_s() -> None:
    """An incident that opened as a model's (two healthy pumps, ten hours before a tenth of
    the release's cohort failed) and became the release's two hours after: the team heard of
    the release then, so the hours count from the absorption (2.0); the ``_opened`` keys
    keep the opening (-10.0), and the absorption is counted as one of another cause."""
    config = FleetConfig(devices=80, seed=3, products=("heat_pump", "water_pump"),
                         horizon_s=20 * 86400.0, fault_fraction=0.0,
                         fleet_faults=FLEET_FAULTS[:1])
    fleet = Fleet(config)
    release = FLEET_FAULTS[0]
    cohort = [d for d in fleet.devices if release.name in d.fleet_cohorts]
    truths = {t.device_id: t for t in fleet.ground_truth}
    affected = sorted((t.onset, d.device_id) for d in cohort
                      if (t := truths.get(d.device_id)) is not None)
    tenth_at = affected[max(1, -(-len(cohort) // 10)) - 1][0]
    healthy = [d.device_id for d in fleet.devices if d.device_id not in truths][:2]
    devices = tuple(d for _, d in affected) + tuple(healthy)
    incident = SimIncident(1, "heat_pump/firmware=2.6.0", "compressor", tenth_at - 10 * 3600.0,
                           tenth_at + 2 * 3600.0, devices, dict.fromkeys(devices, 1),
                           dict.fromkeys(devices, 1), tuple(healthy))
    figures = incident_report([incident], fleet, {d for _, d in affected})
    row = figures["by_fleet_fault"][release.name]
    assert (row["h_tenth_of_cohort_to_incident"],
            row["h_tenth_of_cohort_to_incident_opened"]) == (2.0, -10.0)
    assert (figures["median_h_tenth_of_cohort_to_incident"],
            figures["median_h_tenth_of_cohort_to_incident_opened"]) == (2.0, -10.0)
    assert (figures["incidents_absorbed"], figures["incidents_absorbed_of_another_cause"]) == (1, 1)
    assert row["incident_cohort"] == "heat_pump/firmware=2.6.0"
