"""The evaluation's figures: the JSON report, and the summary the terminal shows in words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from forewarn.sim.match import FaultMatch, MatchResult

__all__ = ["LABELS", "print_report", "report"]

_H = 3600.0


def _pct(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) / _H, 2) if values else None


def _summary(matches: Sequence[FaultMatch]) -> dict[str, Any]:
    calling = [m for m in matches if m.outcome in ("before_call", "after_call", "missed")]
    before = [m for m in calling if m.outcome == "before_call"]
    leads = [m.lead_time_s for m in before if m.lead_time_s is not None]
    return {
        "faults": len(matches),
        "faults_causing_calls": len(calling),
        "notified_before_call": len(before),
        "pct_notified_before_call": (round(100.0 * len(before) / len(calling), 1)
                                     if calling else None),
        "median_lead_time_h": _pct(leads, 50),
        "p10_lead_time_h": _pct(leads, 10),
        "p90_lead_time_h": _pct(leads, 90),
        "detected_after_call": sum(m.outcome == "after_call" for m in calling),
        "missed": sum(m.outcome == "missed" for m in calling),
        "calls_after_horizon": sum(m.outcome == "call_after_horizon" for m in matches),
        "detected": sum(m.detected_at is not None for m in matches),
        "customer_notices": sum(m.notified_at is not None for m in matches),
    }


def report(result: MatchResult, *, devices: int, days: float,
           learn_days: float = 0.0, start: float | None = None,
           quirk_devices: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The evaluation's figures as a JSON-ready dict (overall, per fault kind, product, course).

    ``device_days`` counts the days after the detectors' learning days (when rules ran); with
    ``start`` (the run's first second) the false-case rate is also given for the first and the
    second half of those days (simulated agents marking false cases should lower the second).
    ``quirk_devices`` (installation quirks, ``firmware_sim.quirks``) adds their false cases
    apart: how often each raised the same case again.
    """
    device_days = devices * max(0.0, days - learn_days)
    out: dict[str, Any] = {"devices": devices, "days": days, "learn_days": learn_days,
                           "device_days": device_days}
    out.update(_summary(result.faults))
    out["false_cases"] = len(result.false_cases)
    out["false_cases_per_1000_device_days"] = (
        round(1000.0 * len(result.false_cases) / device_days, 2) if device_days else None)
    if start is not None:
        mid = start + (learn_days + (days - learn_days) / 2.0) * 86_400.0
        early = sum(c.noticed_at < mid for c in result.false_cases)
        for half, count in (("first", early), ("second", len(result.false_cases) - early)):
            out[f"false_cases_per_1000_device_days_{half}_half"] = (
                round(2000.0 * count / device_days, 2) if device_days else None)
        if quirk_devices:
            quirky = [c for c in result.false_cases if c.device_id in quirk_devices]
            out["quirk_devices"] = len(quirk_devices)
            out["quirk_false_cases"] = len(quirky)
            out["quirk_false_cases_first_half"] = sum(c.noticed_at < mid for c in quirky)
            out["quirk_false_cases_second_half"] = sum(c.noticed_at >= mid for c in quirky)
    shared = [m for m in result.faults if m.truth.fleet_fault]
    out["fleet_faults_injected"] = len({m.truth.fleet_fault for m in shared})
    # both keys in every report (issue 20's contract): a run with fleet faults replaces this
    # with what its incidents found (``forewarn.sim.incidents.incident_report``)
    out["fleet_faults_found_as_incident"] = 0
    out["fleet_fault_devices"] = len(shared)
    out["fleet_fault_devices_detected"] = sum(m.detected_at is not None for m in shared)
    out["false_customer_notices"] = sum(c.customer_notice for c in result.false_cases)
    out["notices_for_never_visible_faults"] = result.notices_for_invisible
    out["offline_cases"] = len(result.offline_cases)
    kinds = sorted({m.truth.kind for m in result.faults})
    out["by_fault"] = {k: _summary([m for m in result.faults if m.truth.kind == k])
                       for k in kinds}
    products = sorted({m.truth.product for m in result.faults})
    out["by_product"] = {p: _summary([m for m in result.faults if m.truth.product == p])
                         for p in products}
    courses = sorted({m.truth.course for m in result.faults})
    out["by_course"] = {c: _summary([m for m in result.faults if m.truth.course == c])
                        for c in courses}
    false_by: dict[str, int] = {}
    for case in result.false_cases:
        false_by[case.rule] = false_by.get(case.rule, 0) + 1
    out["false_cases_by_rule"] = dict(sorted(false_by.items()))
    return out


# -- running the fleet through the pipelines ---------------------------------------------------


def _fmt(value: Any) -> str:
    return "–" if value is None else str(value)


#: the report's keys (as --json writes them) and how the summary says them
LABELS: dict[str, str] = {
    "devices": "devices",
    "days": "simulated days",
    "learn_days": "learning days (rules wait)",
    "device_days": "device-days evaluated (after learning)",
    "seed": "seed",
    "faults": "faults injected",
    "faults_causing_calls": "faults the customer calls about",
    "notified_before_call": "customer told before the call",
    "pct_notified_before_call": "% told before the call",
    "median_lead_time_h": "lead time before the call, median (h)",
    "p10_lead_time_h": "lead time, 10th percentile (h)",
    "p90_lead_time_h": "lead time, 90th percentile (h)",
    "detected_after_call": "detected only after the call",
    "missed": "never detected",
    "false_cases": "false cases (no fault behind them)",
    "false_cases_per_1000_device_days": "false cases per 1000 device-days",
    "false_cases_per_1000_device_days_first_half": "… in the first half",
    "false_cases_per_1000_device_days_second_half": "… in the second half",
    "quirk_devices": "devices with an installation quirk (weekly heat source)",
    "quirk_false_cases_first_half": "… their false cases in the first half",
    "quirk_false_cases_second_half": "… in the second half",
    "fleet_faults_injected": "fleet-wide faults injected (cohorts)",
    "fleet_fault_devices": "devices affected by them",
    "fleet_fault_devices_detected": "… of which a case caught",
    "fleet_faults_found_as_incident": "fleet-wide faults found as one incident",
    "median_h_tenth_of_cohort_to_incident": "… hours from a tenth of the cohort affected to "
                                            "its incident, median",
    "median_h_tenth_visible_to_incident": "… hours from a tenth of it visible, median",
    "median_h_tenth_of_cohort_to_incident_opened": "… to the incident's opening (as a model's)",
    "incidents_absorbed": "incidents that opened as a model's, absorbed by a narrower cohort",
    "incidents_absorbed_of_another_cause": "… of which opened by devices of another cause",
    "customer_messages_per_affected_device_per_incident":
        "customer messages per affected device per incident",
    "max_customer_messages_per_device_since_incident_opened":
        "… most to one device once the incident was open",
    "incidents": "fleet incidents opened",
    "false_incidents": "… of which mostly of devices without a fleet fault",
    "cases_fleet_fault_median_h_after_onset": "… hours from onset to the case, median",
    "peer_fleet_fault_devices_flagged": "… of which the peer detector flagged",
    "peer_fleet_fault_median_h_after_onset": "… hours from onset to the flag, median",
    "peer_false_flags_per_1000_device_days": "peer flags on healthy devices per 1000 of their days",
    "peer_cohort_false_flags": "cohort flags on healthy devices (firmware steps included)",
    "notices_for_never_visible_faults": "notices for faults the customer never noticed",
    "offline_cases": "offline cases (a simulated outage: not false)",
    "samples": "samples streamed",
    "run_time_s": "run time (s)",
    "samples_per_s": "samples per second",
}


def print_report(report: dict[str, Any], console: Console) -> None:
    """The figures at a glance, in words (--json keeps the keys): overall, then one row per
    fault kind."""
    overall = Table(title="forewarn sim evaluate", show_header=False, title_justify="left")
    overall.add_column(style="bold")
    overall.add_column(justify="right")
    for key, label in LABELS.items():
        overall.add_row(label, _fmt(report.get(key)))
    console.print(overall)
    per_kind = Table(title="per fault kind (first: notified before the call; late: only after)",
                     title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # p10/p90 and the rest are in the JSON report: the table fits an 80-column terminal
    columns = {"faults": "faults", "faults_causing_calls": "calls",
               "notified_before_call": "first", "pct_notified_before_call": "%",
               "median_lead_time_h": "lead h", "detected_after_call": "late",
               "missed": "missed"}
    per_kind.add_column("kind", no_wrap=True)
    for label in columns.values():
        per_kind.add_column(label, justify="right", no_wrap=True, min_width=max(len(label), 4))
    for kind, row in report.get("by_fault", {}).items():
        per_kind.add_row(kind, *(_fmt(row.get(name)) for name in columns))
    console.print(per_kind)
