"""The console's read side: every query takes the caller's tenant and never looks past it.

The API routers and the web pages both call these, so the page an agent sees and the JSON a
helpdesk reads are the same facts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from forewarn.console.context import ConsoleContext
from forewarn.console.schemas import (
    CaseDetail,
    CaseEvent,
    CasePage,
    CaseSummary,
    DeviceDetail,
    DeviceSummary,
    FleetOverview,
    LabelOut,
    NoticeOut,
    Telemetry,
)
from rules.db import AlarmStateRow, CaseEventRow, CaseRow, DeviceRow, LabelRow, NoticeRow

__all__ = [
    "CaseFilters",
    "SortOrder",
    "case_detail",
    "case_page",
    "device_detail",
    "devices",
    "fleet",
    "notice_out",
    "notices",
    "telemetry",
]

SortOrder = Literal["priority", "newest", "oldest"]
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_STATUS_RANK = {"open": 0, "acknowledged": 1, "resolved": 2}
#: charts never get more points than this per field: the bucket grows instead
MAX_POINTS = 1500


class CaseFilters:
    """What the case queue is narrowed to (None: no filter)."""

    def __init__(self, status: Sequence[str] = (), severity: Sequence[str] = (),
                 device_id: str | None = None, customer_id: str | None = None,
                 rule: str | None = None) -> None:
        self.status = tuple(status)
        self.severity = tuple(severity)
        self.device_id = device_id
        self.customer_id = customer_id
        self.rule = rule

    def where(self, tenant: str) -> list[ColumnElement[bool]]:
        """SQL conditions, the tenant's first."""
        conds: list[ColumnElement[bool]] = [CaseRow.tenant == tenant]
        if self.status:
            conds.append(CaseRow.status.in_(self.status))
        if self.severity:
            conds.append(CaseRow.severity.in_(self.severity))
        if self.device_id:
            conds.append(CaseRow.device_id == self.device_id)
        if self.customer_id:
            conds.append(CaseRow.customer_id == self.customer_id)
        if self.rule:
            conds.append(CaseRow.rule == self.rule)
        return conds


def _assignees(session: Session, case_ids: Sequence[int]) -> dict[int, str]:
    if not case_ids:
        return {}
    rows = session.execute(
        select(CaseEventRow.case_id, CaseEventRow.detail)
        .where(CaseEventRow.case_id.in_(case_ids), CaseEventRow.kind == "assigned")
        .order_by(CaseEventRow.id)).all()
    out: dict[int, str] = {}
    for case_id, detail in rows:
        out[case_id] = (detail or "").split(" (by ", 1)[0]
    return out


def _summary(case_row: CaseRow, assignee: str, now: float, customer_name: str = ""
             ) -> CaseSummary:
    predicted = case_row.predicted_failure_at
    return CaseSummary(
        id=case_row.id, ref=f"FW-{case_row.id}", tenant=case_row.tenant,
        device_id=case_row.device_id, product=case_row.product,
        customer_id=case_row.customer_id or "", customer_name=customer_name, rule=case_row.rule,
        rules=[r for r in (case_row.rules or case_row.rule).split(",") if r],
        severity=case_row.severity, status=case_row.status, assignee=assignee,
        summary=case_row.summary, field=case_row.field, peak_score=case_row.peak_score,
        fault_started_at=case_row.fault_started_at, opened_at=case_row.opened_at,
        acknowledged_at=case_row.acknowledged_at, resolved_at=case_row.resolved_at,
        escalated_at=case_row.escalated_at, reopened=case_row.reopened or 0,
        customer_notified=bool(case_row.customer_notified),
        age_s=max(0.0, now - case_row.opened_at), predicted_failure_at=predicted,
        lead_time_s=None if predicted is None else predicted - now,
    )


def _order(sort: SortOrder) -> list[Any]:
    if sort == "newest":
        return [CaseRow.opened_at.desc(), CaseRow.id.desc()]
    if sort == "oldest":
        return [CaseRow.opened_at, CaseRow.id]
    status = case(_STATUS_RANK, value=CaseRow.status, else_=3)
    severity = case(_SEVERITY_RANK, value=CaseRow.severity, else_=3)
    # unresolved first, worst first, then the soonest predicted failure, then the oldest
    return [status, severity, CaseRow.predicted_failure_at.is_(None),
            CaseRow.predicted_failure_at, CaseRow.opened_at, CaseRow.id]


def case_page(ctx: ConsoleContext, tenant: str, filters: CaseFilters, limit: int, offset: int,
              sort: SortOrder = "priority") -> CasePage:
    """A page of the tenant's cases."""
    now = ctx.clock()
    conds = filters.where(tenant)
    with Session(ctx.engine) as session:
        total = int(session.scalar(select(func.count()).select_from(CaseRow).where(*conds)) or 0)
        rows = list(session.scalars(select(CaseRow).where(*conds).order_by(*_order(sort))
                                    .limit(limit).offset(offset)))
        names = _assignees(session, [r.id for r in rows])
        items = [_summary(r, names.get(r.id, ""), now,
                          ctx.customer_name(r.tenant, r.device_id, r.product)) for r in rows]
    return CasePage(total=total, limit=limit, offset=offset, items=items)


def notice_out(row: NoticeRow) -> NoticeOut:
    return NoticeOut(
        id=row.id, case_id=row.case_id, audience=row.audience, kind=row.kind or "opened",
        channel=row.channel, recipient=row.recipient or "", customer_id=row.customer_id or "",
        device_id=row.device_id, subject=row.subject, body=row.body, status=row.status,
        attempts=row.attempts, last_error=row.last_error, created_at=row.created_at,
        sent_at=row.sent_at, next_attempt_at=row.next_attempt_at,
    )


def case_detail(ctx: ConsoleContext, tenant: str, case_id: int) -> CaseDetail | None:
    """One case of the tenant with evidence, timeline and notices; None if it is not theirs."""
    now = ctx.clock()
    with Session(ctx.engine) as session:
        row = session.scalar(select(CaseRow).where(CaseRow.id == case_id,
                                                   CaseRow.tenant == tenant))
        if row is None:
            return None
        events = session.scalars(select(CaseEventRow).where(CaseEventRow.case_id == case_id)
                                 .order_by(CaseEventRow.id)).all()
        sent = session.scalars(select(NoticeRow).where(NoticeRow.case_id == case_id)
                               .order_by(NoticeRow.id)).all()
        resolved = session.scalars(select(LabelRow).where(
            LabelRow.case_id == case_id, LabelRow.tenant == tenant).order_by(LabelRow.id)).all()
        try:
            evidence = json.loads(row.evidence_json or "{}")
        except ValueError:
            evidence = {"raw": row.evidence_json}
        if not isinstance(evidence, dict):
            evidence = {"evidence": evidence}
        summary = _summary(row, _assignees(session, [row.id]).get(row.id, ""), now,
                           ctx.customer_name(row.tenant, row.device_id, row.product))
        return CaseDetail(
            **summary.model_dump(), evidence=_finite(evidence),
            timeline=[CaseEvent(ts=e.ts, kind=e.kind, detail=e.detail) for e in events],
            notices=[notice_out(n) for n in sent],
            labels=[LabelOut(outcome=r.outcome, category=r.category,
                             window_start=r.window_start, window_end=r.window_end,
                             labelled_by=r.labelled_by, labelled_at=r.labelled_at)
                    for r in resolved],
        )


def _finite(value: Any) -> Any:
    """JSON cannot carry NaN: evidence values that are not finite become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def notices(ctx: ConsoleContext, tenant: str, statuses: Sequence[str], limit: int,
            offset: int) -> tuple[dict[str, int], list[NoticeOut]]:
    """The tenant's notice counts by status, and a page of notices in ``statuses``."""
    with Session(ctx.engine) as session:
        counts = {str(s): int(n) for s, n in session.execute(
            select(NoticeRow.status, func.count()).where(NoticeRow.tenant == tenant)
            .group_by(NoticeRow.status)).all()}
        rows = session.scalars(select(NoticeRow).where(
            NoticeRow.tenant == tenant, NoticeRow.status.in_(statuses))
            .order_by(NoticeRow.id.desc()).limit(limit).offset(offset)).all()
        return counts, [notice_out(r) for r in rows]


def devices(ctx: ConsoleContext, tenant: str) -> list[DeviceSummary]:
    """Every device of the tenant the store, the alarms or the cases know, by id."""
    known: dict[str, dict[str, Any]] = {}

    def entry(device_id: str) -> dict[str, Any]:
        return known.setdefault(device_id, {"product": "", "customer_id": "", "last_seen": None,
                                            "open": 0, "worst": 3, "warmup": None})

    for device_id, (product, last, samples) in ctx.store_listing(tenant).items():
        e = entry(device_id)
        e["product"], e["last_seen"] = product, last
        if ctx.warmup_samples > 0:
            e["warmup"] = round(min(100.0, 100.0 * samples / ctx.warmup_samples), 1)
    with Session(ctx.engine) as session:
        for device_id, product, last in session.execute(
                select(AlarmStateRow.device_id, func.max(AlarmStateRow.product),
                       func.max(AlarmStateRow.last_seen))
                .where(AlarmStateRow.tenant == tenant).group_by(AlarmStateRow.device_id)):
            e = entry(device_id)
            e["product"] = e["product"] or product or ""
            if last is not None and (e["last_seen"] is None or last > e["last_seen"]):
                e["last_seen"] = float(last)
        for lifecycle in session.scalars(select(DeviceRow).where(DeviceRow.tenant == tenant)):
            e = entry(lifecycle.device_id)
            e["product"] = e["product"] or lifecycle.product
            if lifecycle.last_seen is not None and (
                    e["last_seen"] is None or lifecycle.last_seen > e["last_seen"]):
                e["last_seen"] = float(lifecycle.last_seen)
            if lifecycle.state in ("online", "offline"):
                e["connection"] = (lifecycle.state, lifecycle.reason, lifecycle.since)
        for row in session.execute(select(CaseRow.device_id, CaseRow.product,
                                          CaseRow.customer_id, CaseRow.status,
                                          CaseRow.severity).where(CaseRow.tenant == tenant)):
            e = entry(row.device_id)
            e["product"] = e["product"] or row.product
            e["customer_id"] = e["customer_id"] or row.customer_id or ""
            if row.status != "resolved":
                e["open"] += 1
                e["worst"] = min(e["worst"], _SEVERITY_RANK.get(row.severity, 2))
    names = {0: "critical", 1: "warning", 2: "warning", 3: "ok"}
    return [DeviceSummary(device_id=d, product=e["product"], customer_id=e["customer_id"],
                          customer_name=ctx.customer_name(tenant, d, e["product"]),
                          status=names[e["worst"]], last_seen=e["last_seen"],
                          open_cases=e["open"], warmup_pct=e["warmup"],
                          **_connection(e.get("connection")))
            for d, e in sorted(known.items())]


def _connection(state: tuple[str, str | None, float | None] | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {"connection": state[0], "connection_reason": state[1],
            "connection_since": state[2]}


def device_detail(ctx: ConsoleContext, tenant: str, device_id: str) -> DeviceDetail | None:
    """One device of the tenant with its unresolved cases and its case history; None when the
    tenant has no such device."""
    found = [d for d in devices(ctx, tenant) if d.device_id == device_id]
    if not found:
        return None
    history = case_page(ctx, tenant, CaseFilters(device_id=device_id), limit=200, offset=0,
                        sort="newest").items
    unresolved = [c for c in history if c.status != "resolved"]
    with Session(ctx.engine) as session:
        lifecycle = session.get(DeviceRow, (tenant, device_id))
    desired = json.loads(lifecycle.desired_json) if lifecycle and lifecycle.desired_json \
        else None
    reported = json.loads(lifecycle.reported_json) if lifecycle and lifecycle.reported_json \
        else None
    return DeviceDetail(**found[0].model_dump(), cases=unresolved, history=history,
                        desired_config=desired, reported_config=reported)


def _nullable(matrix: np.ndarray[Any, Any]) -> list[list[float | None]]:
    return [[None if not math.isfinite(x) else round(float(x), 4) for x in row]
            for row in matrix.tolist()]


def telemetry(ctx: ConsoleContext, tenant: str, device_id: str, start: float, stop: float,
              every_s: float = 0.0) -> Telemetry:
    """A device's values and scores in [start, stop), bucketed to at most ``MAX_POINTS`` rows."""
    every_s = max(every_s, (stop - start) / MAX_POINTS)
    every_s = float(math.ceil(every_s))
    frame = ctx.read_series(tenant, device_id, start, stop, every_s)
    threshold = ctx.anomaly_threshold
    if frame is None or frame.t.shape[0] == 0:
        return Telemetry(device_id=device_id, start=start, stop=stop, every_s=every_s, fields=[],
                         t=[], values=[], scores=[], threshold=threshold, anomalies=[],
                         events=[])
    anomalies: list[dict[str, Any]] = []
    scores = np.nan_to_num(frame.scores, nan=0.0)
    rows, cols = np.nonzero(scores >= threshold)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        anomalies.append({"t": float(frame.t[i]), "field": frame.fields[j],
                          "score": round(float(scores[i, j]), 4)})
    events = [{"t": e.ts, "field": e.field, "detector": e.detector,
               "score": _finite(e.score), "value": _finite(e.value),
               "explanation": e.explanation}
              for e in ctx.read_events(tenant, device_id, start, stop)]
    return Telemetry(device_id=device_id, start=start, stop=stop, every_s=every_s,
                     fields=list(frame.fields), t=[float(x) for x in frame.t.tolist()],
                     values=_nullable(frame.values), scores=_nullable(frame.scores),
                     threshold=threshold, anomalies=anomalies[:5000], events=events[:1000])


def fleet(ctx: ConsoleContext, tenant: str) -> FleetOverview:
    """Devices by product and status, and the tenant's cases by severity and status."""
    listing = devices(ctx, tenant)
    by_product: dict[str, dict[str, int]] = {}
    for d in listing:
        counts = by_product.setdefault(d.product or "unknown",
                                       {"ok": 0, "warning": 0, "critical": 0})
        counts[d.status] = counts.get(d.status, 0) + 1
    with Session(ctx.engine) as session:
        open_by = {str(s): int(n) for s, n in session.execute(
            select(CaseRow.severity, func.count()).where(
                CaseRow.tenant == tenant, CaseRow.status != "resolved")
            .group_by(CaseRow.severity)).all()}
        by_status = {str(s): int(n) for s, n in session.execute(
            select(CaseRow.status, func.count()).where(CaseRow.tenant == tenant)
            .group_by(CaseRow.status)).all()}
    return FleetOverview(devices=len(listing), by_product=by_product,
                         open_cases_by_severity=open_by, cases_by_status=by_status)
