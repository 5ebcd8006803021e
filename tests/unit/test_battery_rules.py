"""The shipped home battery rules (config/rules/home_battery.yaml) on small simulated fleets:
a pack that merely loses samples is no loose connection, a loose connection and a cut-off pack
are caught, and a healthy pack whose detector learned on a cloudy first day opens no case."""

from __future__ import annotations

from pathlib import Path

from firmware_sim.calls import CallModel
from firmware_sim.imperfections import Imperfections
from forewarn.sim_evaluate import EvalOptions, run_evaluation

ROOT = Path(__file__).resolve().parents[2]
H = 3600.0
PACKS = {"products": ("home_battery",), "rules_dir": ROOT / "config" / "rules",
         "limits": ROOT / "config" / "limits.yaml"}
CALLS = CallModel(median_delay_s=8 * H, sigma=0.3, never_call_fraction=0.0)


def test_packs_that_lose_samples_at_random_open_no_case() -> None:
    # three times the fleet's usual losses (each pack its own rate, here 0.2-11 %): the old
    # rule, which counted every run of missing samples, called two of these packs loose
    options = EvalOptions(devices=6, days=4.0, seed=21, fault_fraction=0.0,
                          imperfections=Imperfections(missing_rate=0.01, outages_per_day=0.0),
                          **PACKS)  # type: ignore[arg-type]
    figures = run_evaluation(options).report
    assert figures["false_cases"] == 0, figures["false_cases_by_rule"]


def test_a_loose_connection_is_caught_before_the_call() -> None:
    options = EvalOptions(devices=4, days=6.0, seed=2, fault_fraction=1.0,
                          fault_kinds=("loose_connection",), call_model=CALLS,
                          imperfections=Imperfections.none(), **PACKS)  # type: ignore[arg-type]
    figures = run_evaluation(options).report
    assert figures["faults_causing_calls"] >= 3
    assert figures["notified_before_call"] >= figures["faults_causing_calls"] - 1
    assert figures["false_cases"] == 0


def test_a_cut_off_pack_is_caught() -> None:
    options = EvalOptions(devices=4, days=4.0, seed=4, fault_fraction=1.0,
                          fault_kinds=("component_failure",), call_model=CALLS,
                          imperfections=Imperfections.none(), **PACKS)  # type: ignore[arg-type]
    evaluation = run_evaluation(options)
    rules = {c.rule for c in evaluation.cases}
    assert rules <= {"home_battery_contactor_open", "home_battery_idle_at_night"}, rules
    # a pack cut off at its floor (10 %) looks like a flat pack: it may go unseen
    assert evaluation.report["detected"] >= 2
