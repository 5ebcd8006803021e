"""The fleet incidents of a simulated run, judged against the fleet faults' ground truth.

A fleet fault is *found as one incident* when one incident links at least half of the
affected devices that a case caught (the rest may have opened cases before the incident, or
later in another cohort's). Its time to incident is counted from the moment a tenth of its
cohort (the devices that installed the release, that came from the batch) was affected: the
fault's onset on that many devices, and, beside it, its first visible sign in the telemetry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from firmware_sim.fleet import Fleet
from rules.db import IncidentCaseRow, IncidentFlagRow, IncidentRow, NoticeRow

__all__ = ["SimIncident", "collect_incidents", "incident_report"]

_H = 3600.0


@dataclass(frozen=True, slots=True)
class SimIncident:
    """One incident the rules opened: when, over which cohort and rule, which devices, and how
    many customer messages each linked device's customer got for it."""

    incident_id: int
    cohort: str
    rule: str
    opened_at: float
    #: when it became ``cohort``'s (later than ``opened_at``: it opened as a model's and a
    #: release's, a batch's or a region's cluster absorbed it)
    cohort_at: float
    devices: tuple[str, ...]
    #: device → customer notices (not suppressed) about its cases of the incident
    customer_messages: dict[str, int]
    #: …of them, those queued once the incident was open (its own message, or a later case's)
    customer_messages_since_open: dict[str, int]
    #: the devices whose cases it opened with (linked when it opened)
    opened_with: tuple[str, ...] = ()


def collect_incidents(engine: Engine) -> list[SimIncident]:
    """Every incident of the case database, with its devices and their customer messages."""
    with Session(engine) as session:
        incidents = list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))
        links = session.execute(select(IncidentCaseRow.incident_id, IncidentCaseRow.case_id,
                                       IncidentCaseRow.device_id, IncidentCaseRow.joined_at)
                                .order_by(IncidentCaseRow.id)).all()
        flagged = session.execute(select(IncidentFlagRow.incident_id, IncidentFlagRow.device_id)
                                  .where(IncidentFlagRow.incident_id.is_not(None))).all()
        sent = session.execute(select(NoticeRow.case_id, NoticeRow.created_at).join(
            IncidentCaseRow, IncidentCaseRow.case_id == NoticeRow.case_id).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed")).all()
    out = []
    for row in incidents:
        mine = [link for link in links if link.incident_id == row.id]
        cases = {link.case_id: link.device_id for link in mine}
        # the cases it opened with were linked first, at once (one ``joined_at``)
        first = mine[0].joined_at if mine else None
        devices = dict.fromkeys(sorted(set(cases.values()) | {
            d for incident_id, d in flagged if incident_id == row.id}), 0)
        since = dict(devices)
        for case_id, created_at in sent:
            if case_id in cases:
                devices[cases[case_id]] += 1
                since[cases[case_id]] += created_at >= row.opened_at
        out.append(SimIncident(
            row.id, row.cohort, row.rule, row.opened_at,
            row.opened_at if row.cohort_at is None else row.cohort_at, tuple(devices),
            devices, since, tuple(sorted({link.device_id for link in mine
                                          if link.joined_at == first}))))
    return out


def _median_h(values: Sequence[float]) -> float | None:
    return round(float(np.median(values)) / _H, 2) if values else None


def incident_report(incidents: Sequence[SimIncident], fleet: Fleet,
                    detected: set[str]) -> dict[str, Any]:
    """The incident figures of ``sim evaluate``; ``detected``: devices a case caught.

    Hours to the incident count to when it became the incident it is (its ``cohort_at``):
    an incident that opened as a model's and that a release's cluster absorbed told the team
    of a model, not of the release, until then. ``…_opened`` keys count to its opening."""
    truth = {d.device_id: d.truth for d in fleet.devices if d.truth is not None}
    shared = {d: t.fleet_fault for d, t in truth.items() if t.fleet_fault}
    found = 0
    to: dict[str, list[float]] = {k: [] for k in (
        "of_cohort", "visible", "of_cohort_opened", "visible_opened")}
    per_fault: dict[str, dict[str, Any]] = {}
    for fault in fleet.config.fleet_faults:
        cohort = [d for d in fleet.devices if fault.name in d.fleet_cohorts]
        affected = [d for d in cohort if d.device_id in shared
                    and shared[d.device_id] == fault.name]
        caught = {d.device_id for d in affected} & detected
        tenth = max(1, math.ceil(0.1 * len(cohort)))
        onsets = sorted(truth[d.device_id].onset for d in affected)
        visible = sorted(v for d in affected if (v := truth[d.device_id].visible) is not None)
        tenth_at = onsets[tenth - 1] if len(onsets) >= tenth else None
        tenth_visible = visible[tenth - 1] if len(visible) >= tenth else None
        touching = [i for i in incidents if caught & set(i.devices)]
        best = max(touching, key=lambda i: len(caught & set(i.devices)), default=None)
        as_one = best is not None and 2 * len(caught & set(best.devices)) >= len(caught) > 0
        row: dict[str, Any] = {
            "cohort_devices": len(cohort), "affected": len(affected), "detected": len(caught),
            "incidents": len(touching), "found_as_incident": as_one,
            "linked_in_incident": len(caught & set(best.devices)) if best else 0,
            "incident_cohort": best.cohort if as_one and best else None,
            "h_tenth_of_cohort_to_incident": None, "h_tenth_visible_to_incident": None,
            "h_tenth_of_cohort_to_incident_opened": None,
            "h_tenth_visible_to_incident_opened": None}
        if as_one and best is not None:
            found += 1
            for key, start in (("of_cohort", tenth_at), ("visible", tenth_visible)):
                if start is None:
                    continue
                for suffix, at in (("", best.cohort_at), ("_opened", best.opened_at)):
                    to[key + suffix].append(at - start)
                    row[f"h_tenth_{key}_to_incident{suffix}"] = round((at - start) / _H, 2)
        per_fault[fault.name] = row
    messages = [n for i in incidents for d, n in i.customer_messages.items() if d in shared]
    false = [i for i in incidents if 2 * sum(d in shared for d in i.devices) < len(i.devices)]
    # incidents a narrower cohort's cluster absorbed (they opened as a model's): of how many
    # were the devices they opened with mostly of another cause (ground truth) than the fleet
    # fault of the cohort that absorbed them
    faults = {f"{f.product}/{f.cohort}={f.value}": f.name for f in fleet.config.fleet_faults}
    absorbed = [i for i in incidents if i.cohort_at > i.opened_at]
    start = fleet.config.start
    of_another_cause = sum(2 * sum(
        i.cohort in faults and shared.get(d) == faults[i.cohort] for d in i.opened_with)
        < len(i.opened_with) for i in absorbed)
    absorptions = [{
        "incident": i.incident_id, "cohort": i.cohort,
        "opened_h": round((i.opened_at - start) / _H, 2),
        "cohort_h": round((i.cohort_at - start) / _H, 2), "opened_with": len(i.opened_with),
        "opened_with_of_its_fault": sum(
            i.cohort in faults and shared.get(d) == faults[i.cohort] for d in i.opened_with)}
        for i in absorbed]
    return {
        "incidents": len(incidents),
        "false_incidents": len(false),
        # devices that went offline together (simulated outages): no fault, no customer told
        "false_incidents_offline": sum(i.rule.endswith("_offline") for i in false),
        "fleet_faults_found_as_incident": found,
        "median_h_tenth_of_cohort_to_incident": _median_h(to["of_cohort"]),
        "median_h_tenth_visible_to_incident": _median_h(to["visible"]),
        "median_h_tenth_of_cohort_to_incident_opened": _median_h(to["of_cohort_opened"]),
        "median_h_tenth_visible_to_incident_opened": _median_h(to["visible_opened"]),
        "incidents_absorbed": len(absorbed),
        "incidents_absorbed_of_another_cause": of_another_cause,
        "absorptions": absorptions,
        "customer_messages_per_affected_device_per_incident": (
            round(sum(messages) / len(messages), 2) if messages else None),
        "max_customer_messages_per_device_per_incident": max(
            (n for i in incidents for n in i.customer_messages.values()), default=0),
        # what the incident itself (or a case once it was open) sent: never more than one
        "max_customer_messages_per_device_since_incident_opened": max(
            (n for i in incidents for n in i.customer_messages_since_open.values()),
            default=0),
        "by_fleet_fault": per_fault,
    }
