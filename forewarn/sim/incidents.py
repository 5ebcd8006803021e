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
    devices: tuple[str, ...]
    #: device → customer notices (not suppressed) about its cases of the incident
    customer_messages: dict[str, int]
    #: …of them, those queued once the incident was open (its own message, or a later case's)
    customer_messages_since_open: dict[str, int]


def collect_incidents(engine: Engine) -> list[SimIncident]:
    """Every incident of the case database, with its devices and their customer messages."""
    with Session(engine) as session:
        incidents = list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))
        links = session.execute(select(IncidentCaseRow.incident_id, IncidentCaseRow.case_id,
                                       IncidentCaseRow.device_id)).all()
        flagged = session.execute(select(IncidentFlagRow.incident_id, IncidentFlagRow.device_id)
                                  .where(IncidentFlagRow.incident_id.is_not(None))).all()
        sent = session.execute(select(NoticeRow.case_id, NoticeRow.created_at).join(
            IncidentCaseRow, IncidentCaseRow.case_id == NoticeRow.case_id).where(
            NoticeRow.audience == "customer", NoticeRow.status != "suppressed")).all()
    out = []
    for row in incidents:
        cases = {case_id: device_id for incident_id, case_id, device_id in links
                 if incident_id == row.id}
        devices = dict.fromkeys(sorted(set(cases.values()) | {
            d for incident_id, d in flagged if incident_id == row.id}), 0)
        since = dict(devices)
        for case_id, created_at in sent:
            if case_id in cases:
                devices[cases[case_id]] += 1
                since[cases[case_id]] += created_at >= row.opened_at
        out.append(SimIncident(row.id, row.cohort, row.rule, row.opened_at,
                               tuple(devices), devices, since))
    return out


def _median_h(values: Sequence[float]) -> float | None:
    return round(float(np.median(values)) / _H, 2) if values else None


def incident_report(incidents: Sequence[SimIncident], fleet: Fleet,
                    detected: set[str]) -> dict[str, Any]:
    """The incident figures of ``sim evaluate``; ``detected``: devices a case caught."""
    truth = {d.device_id: d.truth for d in fleet.devices if d.truth is not None}
    shared = {d: t.fleet_fault for d, t in truth.items() if t.fleet_fault}
    found = 0
    to_incident: list[float] = []
    to_incident_visible: list[float] = []
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
            "h_tenth_of_cohort_to_incident": None, "h_tenth_visible_to_incident": None}
        if as_one and best is not None:
            found += 1
            if tenth_at is not None:
                to_incident.append(best.opened_at - tenth_at)
                row["h_tenth_of_cohort_to_incident"] = round((best.opened_at - tenth_at) / _H, 2)
            if tenth_visible is not None:
                to_incident_visible.append(best.opened_at - tenth_visible)
                row["h_tenth_visible_to_incident"] = round(
                    (best.opened_at - tenth_visible) / _H, 2)
        per_fault[fault.name] = row
    messages = [n for i in incidents for d, n in i.customer_messages.items() if d in shared]
    false = [i for i in incidents if 2 * sum(d in shared for d in i.devices) < len(i.devices)]
    return {
        "incidents": len(incidents),
        "false_incidents": len(false),
        # devices that went offline together (simulated outages): no fault, no customer told
        "false_incidents_offline": sum(i.rule.endswith("_offline") for i in false),
        "fleet_faults_found_as_incident": found,
        "median_h_tenth_of_cohort_to_incident": _median_h(to_incident),
        "median_h_tenth_visible_to_incident": _median_h(to_incident_visible),
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
