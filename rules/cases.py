"""The case book: opening (or joining, or reopening) cases idempotently, with their notices
written to the outbox in the same transaction; escalation, acknowledgement and resolution.

A case is keyed by tenant/device/group while it is open: the database's unique ``open_key``
refuses a second open case for the same problem, also when several workers race.

>>> from rules.db import connect
>>> from rules.evaluate import Alarm
>>> from rules.model import Rule
>>> engine = connect("sqlite://")
>>> book = CaseBook(engine, channel="terminal", clock=lambda: 0.0)
>>> alarm = Alarm(Rule(name="r", score_at_least=0.8), "acme", "hp-1", "heat_pump",
...               0.0, 600.0, "discharge_temp", 0.93, 81.5)
>>> case = book.open_case(alarm)
>>> case is not None and book.open_case(alarm) is None  # the same alarm never opens two cases
True
>>> [(c.device_id, c.rule, c.status) for c in book.cases()]
[('hp-1', 'r', 'open')]
>>> book.resolve("acme", "hp-1", "r", at=900.0), book.record_alarm(alarm).kind  # comes back
(1, 'reopened')
>>> [e.kind for e in book.timeline(1)]
['opened', 'customer notice', 'resolved', 'reopened']
>>> engine.dispose()
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.events import DetectorEvent
from rules.db import CaseEventRow, CaseRow, CustomerAnswerRow, NoticeRow, TicketRow
from rules.errors import RuleError
from rules.evaluate import Alarm
from rules.incidents import IncidentBook, incident_ref
from rules.messages import case_ref, customer_message, team_message, update_message
from rules.model import CasePolicy
from rules.registry import CustomerRegistry, DeviceMeta
from rules.status_link import StatusLinks
from rules.timeparse import DailyHours, next_outside

__all__ = ["CaseBook", "CaseOutcome"]

_NEXT_SEVERITY = {"info": "warning", "warning": "critical", "critical": "critical"}
_DECISION = text("""
SELECT
  (SELECT id FROM tickets WHERE customer_id = :customer AND device_id = :device
     AND closed_at IS NULL LIMIT 1),
  (SELECT id FROM cases WHERE device_id = :device AND tenant = :tenant
     AND open_key IS NOT NULL AND customer_notified LIMIT 1),
  (SELECT count(*) FROM notices WHERE customer_id = :customer AND audience = 'customer'
     AND status != 'suppressed' AND created_at > :since)
""")


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What recording an alarm did to the case book."""

    kind: Literal["opened", "reopened", "joined", "duplicate"]
    case_id: int | None
    case: CaseRow | None = None


class CaseBook:
    """Opens cases keyed by tenant/device/group and queues their notices in the outbox.

    ``channel`` is the default outbox channel for every notice; a customer whose registry
    contact names a channel gets theirs, and ``team_channel`` overrides it for the team.
    """

    def __init__(self, engine: Engine, channel: str = "terminal",
                 clock: Callable[[], float] = time.time, *,
                 policy: CasePolicy | None = None, registry: CustomerRegistry | None = None,
                 team_channel: str | None = None, team_recipient: str = "",
                 status_links: StatusLinks | None = None,
                 incidents: IncidentBook | None = None) -> None:
        self.engine = engine
        self.channel = channel
        self.clock = clock
        self.policy = policy or CasePolicy()
        #: the pipeline replaces the policy with its rules file's unless one was given here
        self.policy_from_rules = policy is None
        self.registry = registry or CustomerRegistry()
        self.team_channel = team_channel or channel
        self.team_recipient = team_recipient
        #: customer notices carry a link to the case's status page (``[serve] public_url``)
        self.status_links = status_links
        #: fleet incidents (``rules.incidents``): a new case may join one, in its transaction
        self.incidents = incidents
        if incidents is not None:
            incidents.route_team(self.team_channel, team_recipient)

    # -- opening -----------------------------------------------------------------------------

    def open_case(self, alarm: Alarm, meta: DeviceMeta | None = None) -> CaseRow | None:
        """Open a case for ``alarm``; None when it joined, reopened or duplicated one."""
        outcome = self.record_alarm(alarm, meta)
        return outcome.case if outcome.kind == "opened" else None

    def record_flag(self, event: DetectorEvent, meta: DeviceMeta | None = None) -> int | None:
        """A detector flagged the device unlike its peers (``event``): the fleet incidents'
        evidence (``rules.incidents``); returns the incident it belongs to (None: none)."""
        if self.incidents is None or event.detector not in self.incidents.policy.flag_detectors:
            return None
        meta = meta or self.registry.lookup(event.tenant, event.device_id, event.product)
        now = self.clock()
        for _ in range(20):  # two workers opening the cohort's incident at once: one wins
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    incident = self.incidents.flag(session, meta, event.detector,
                                                   event.field, event.ts, now)
                    session.commit()
                    return incident
            except IntegrityError:
                continue
        raise RuleError(f"could not record the flag of {event.device_id}: 20 races lost")

    def record_alarm(self, alarm: Alarm, meta: DeviceMeta | None = None) -> CaseOutcome:
        """Open a case, join the open one of its group, or reopen a recently resolved one."""
        meta = meta or self.registry.lookup(alarm.tenant, alarm.device_id, alarm.product)
        key = f"{alarm.tenant}/{alarm.device_id}/{alarm.rule.group_name}"
        now = self.clock()
        for _ in range(20):  # a lost race turns into a join (or a duplicate) next round
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    outcome = self._record(session, alarm, meta, key, now)
                    session.commit()
                    return outcome
            except IntegrityError:
                continue
        return CaseOutcome("duplicate", None)

    def _record(self, session: Session, alarm: Alarm, meta: DeviceMeta, key: str,
                now: float) -> CaseOutcome:
        # the group's newest case: the open one if any (open cases keep open_key == group_key)
        latest = session.scalar(select(CaseRow).where(CaseRow.group_key == key)
                                .order_by(CaseRow.id.desc()).limit(1))
        open_case = latest if latest is not None and latest.open_key == key else None
        if open_case is not None:
            rules = open_case.rules.split(",") if open_case.rules else []
            if alarm.rule.name in rules:
                return CaseOutcome("duplicate", open_case.id, open_case)
            predicted = open_case.predicted_failure_at
            if alarm.predicted_failure_at is not None and (
                    predicted is None or alarm.predicted_failure_at < predicted):
                predicted = alarm.predicted_failure_at
            # compare-and-set on the rule list: two workers joining at once must not both win
            done = session.execute(
                update(CaseRow).where(CaseRow.id == open_case.id,
                                      CaseRow.rules == open_case.rules,
                                      CaseRow.open_key == key)
                .values(rules=",".join([*rules, alarm.rule.name]),
                        predicted_failure_at=predicted)
                .execution_options(synchronize_session=False))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise IntegrityError("join raced", None, Exception("join raced"))
            self._event(session, open_case.id, alarm.fired_at, "joined",
                        f"rule {alarm.rule.name} fired on {', '.join(alarm.fields) or '-'}")
            session.flush()
            return CaseOutcome("joined", open_case.id, open_case)
        if (latest is not None and latest.status == "resolved" and latest.resolved_at is not None
                and alarm.fired_at - latest.resolved_at <= self.policy.reopen_within):
            return self._reopen(session, latest, alarm, key)
        return self._open(session, alarm, meta, key, now)

    def _reopen(self, session: Session, case: CaseRow, alarm: Alarm, key: str) -> CaseOutcome:
        # only the worker whose UPDATE still sees 'resolved' reopens; the others join
        done = session.execute(
            update(CaseRow).where(CaseRow.id == case.id, CaseRow.status == "resolved")
            .values(status="open", open_key=key, resolved_at=None, reopened=case.reopened + 1,
                    escalated_at=None, acknowledged_at=None)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise IntegrityError("reopen raced", None, Exception("reopen raced"))
        rules = case.rules.split(",") if case.rules else []
        if alarm.rule.name not in rules:
            session.execute(update(CaseRow).where(CaseRow.id == case.id)
                            .values(rules=",".join([*rules, alarm.rule.name])))
        self._event(session, case.id, alarm.fired_at, "reopened",
                    f"rule {alarm.rule.name} fired again on {', '.join(alarm.fields) or '-'}")
        self._team_update(session, case, "reopened", f"reopened-{case.reopened + 1}",
                          f"The fault came back ({alarm.rule.name}); the case is open again.")
        session.flush()
        session.refresh(case)
        return CaseOutcome("reopened", case.id, case)

    def _open(self, session: Session, alarm: Alarm, meta: DeviceMeta, key: str,
              now: float) -> CaseOutcome:
        evidence = {
            "fields": list(alarm.fields), "field": alarm.field, "value": alarm.value,
            "peak_score": alarm.peak_score, "around": [list(p) for p in alarm.around],
            "predicted_failure_at": alarm.predicted_failure_at,
            "events": [
                {"ts": e.ts, "field": e.field, "detector": e.detector, "score": e.score,
                 "value": e.value, "explanation": e.explanation,
                 "time_to_limit_s": e.time_to_limit_s}
                for e in alarm.events
            ],
        }
        summary = (f"no data from {alarm.device_id}" if alarm.kind == "no_data"
                   else f"{alarm.device_id} offline (connection lost)"
                   if alarm.kind == "offline"
                   else f"{', '.join(alarm.fields or (alarm.field,))} anomalous on "
                        f"{alarm.device_id}")
        customer_note, customer_wait = self._customer_decision(session, alarm, meta, now)
        told = customer_wait is not None and customer_wait >= 0
        values = {
            "tenant": alarm.tenant, "device_id": alarm.device_id, "product": alarm.product,
            "rule": alarm.rule.name, "rules": alarm.rule.name, "severity": alarm.rule.severity,
            "status": "open", "open_key": key, "group_key": key,
            "customer_id": meta.customer_id, "fault_started_at": alarm.started_at,
            "opened_at": alarm.fired_at, "field": alarm.field, "peak_score": alarm.peak_score,
            "summary": summary, "evidence_json": json.dumps(evidence),
            "predicted_failure_at": alarm.predicted_failure_at,
            "escalate_after_s": alarm.rule.escalate_after, "reopened": 0,
            "customer_notified": told,
        }
        # Core statements, not the ORM's unit of work: opening a case is the hot path when a
        # fleet-wide problem opens hundreds at once. A concurrent duplicate fails right here.
        case_id = session.execute(
            insert(CaseRow).values(**values).returning(CaseRow.id)).scalar_one()
        case = CaseRow(id=case_id, **values)  # what the caller reads; not in the session
        events = [{"case_id": case_id, "ts": alarm.fired_at, "kind": "opened",
                   "detail": summary}]
        link = (self.incidents.link(session, case_id, alarm.rule.name, meta, alarm.fired_at,
                                    now, silent=alarm.kind != "condition")
                if self.incidents is not None else None)
        if link is not None:
            ref = incident_ref(link.incident_id)
            events.append({"case_id": case_id, "ts": now, "kind": "incident",
                           "detail": f"{'opened' if link.opened else 'joined'} fleet "
                                     f"incident {ref}"})
        notices: list[dict[str, object]] = []
        base = {"case_id": case_id, "tenant": alarm.tenant, "device_id": alarm.device_id,
                "kind": "opened", "customer_id": meta.customer_id, "attempts": 0,
                "created_at": now}
        if customer_wait is not None:
            subject, body = customer_message(
                alarm, case_id, meta.language, meta.timezone, meta.customer_name,
                status_url=self.status_links.url(case_id) if self.status_links else "")
            own: dict[str, object] = {
                **base, "audience": "customer", "channel": meta.contact.channel or self.channel,
                "recipient": meta.contact.address,
                "idempotency_key": f"case-{case_id}-customer-opened", "subject": subject,
                "body": body, "status": "pending" if told else "suppressed",
                "next_attempt_at": max(customer_wait, 0.0),
                "last_error": None if told else customer_note}
            notice: dict[str, object] | None = own
            if link is not None and told and self.incidents is not None:
                # the incident speaks for the case: its message (once per device), or held
                notice = self.incidents.customer_notice(session, link, own, meta,
                                                        alarm.product)
                customer_note = (f"{customer_note}: the message of incident {ref}"
                                 if notice is not None and notice["status"] == "pending"
                                 else f"held or already told by incident {ref}")
                told = notice is not None and notice["status"] == "pending"
            if notice is not None:
                notices.append(notice)
            events.append({"case_id": case_id, "ts": now, "kind": "customer notice",
                           "detail": customer_note})
        subject, body = team_message(alarm, case_id, meta.customer_name or meta.customer_id,
                                     customer_note)
        notices.append({
            **base, "audience": "team", "channel": self.team_channel,
            "recipient": self.team_recipient, "idempotency_key": f"case-{case_id}-team-opened",
            "subject": subject, "body": body,
            # a case of an incident: the team hears of the incident once, not of each case
            "status": "pending" if link is None else "suppressed", "next_attempt_at": 0.0,
            "last_error": None if link is None else
            f"part of incident {incident_ref(link.incident_id)}: the team is told once"})
        if link is not None and not told:
            session.execute(update(CaseRow).where(CaseRow.id == case_id)
                            .values(customer_notified=False))
            case.customer_notified = False
        session.execute(insert(CaseEventRow), events)
        session.execute(insert(NoticeRow), notices)
        if customer_note.startswith("suppressed: the customer has open ticket"):
            # the customer called first: their ticket belongs to this case now
            session.execute(update(TicketRow).where(
                TicketRow.customer_id == meta.customer_id,
                TicketRow.device_id == alarm.device_id, TicketRow.closed_at.is_(None),
                TicketRow.case_id.is_(None)).values(case_id=case_id))
        return CaseOutcome("opened", case.id, case)

    def _customer_decision(self, session: Session, alarm: Alarm, meta: DeviceMeta,
                           now: float) -> tuple[str, float | None]:
        """(what the team is told, when the customer notice may go: -1 suppressed, None: no
        notice at all)."""
        if not alarm.rule.notify_customer:
            return "not sent (rule does not notify customers)", None
        budget = (meta.notices_per_day if meta.notices_per_day is not None
                  else self.policy.customer_notices_per_day)
        if budget == 0:
            return "not sent (customer notices are off for this customer)", None
        # one round trip for the three questions: open ticket? open case the customer was
        # told about? customer notices in the last 24 h? (plain SQL: on the hot path, building
        # this statement with the expression language cost more than running it)
        row = session.execute(_DECISION, {
            "customer": meta.customer_id, "device": alarm.device_id, "tenant": alarm.tenant,
            "since": now - 86400.0}).one()
        if row[0] is not None:
            return f"suppressed: the customer has open ticket #{row[0]} for this device", -1.0
        if row[1] is not None:
            return (f"suppressed: the customer already has open case {case_ref(row[1])} "
                    "for this device"), -1.0
        if (row[2] or 0) >= budget:
            return f"suppressed: daily budget of {budget} customer notices reached", -1.0
        quiet = meta.quiet_hours or self.policy.quiet_hours
        if quiet is not None:
            release = next_outside(now, DailyHours.parse(quiet), meta.timezone)
            if release > now:
                return (f"queued; waits for the end of quiet hours ({quiet} "
                        f"{meta.timezone})"), release
        return "queued", 0.0

    # -- changes -----------------------------------------------------------------------------

    def resolve(self, tenant: str, device_id: str, group: str, at: float,
                detail: str = "recovered") -> int | None:
        """Resolve the open case of a group; returns its id (None: no open case)."""
        key = f"{tenant}/{device_id}/{group}"
        with Session(self.engine, expire_on_commit=False) as session:
            case = session.scalar(select(CaseRow).where(CaseRow.open_key == key))
            if case is None:
                return None
            done = session.execute(
                update(CaseRow).where(CaseRow.id == case.id, CaseRow.open_key == key)
                .values(status="resolved", open_key=None, resolved_at=at))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            self._event(session, case.id, at, "resolved", detail)
            # a customer notice still waiting (quiet hours) would tell of a fault already gone
            stale = session.execute(update(NoticeRow).where(
                NoticeRow.case_id == case.id, NoticeRow.audience == "customer",
                NoticeRow.status == "pending", NoticeRow.next_attempt_at > at)
                .values(status="suppressed",
                        last_error="not sent: the case resolved while the notice waited"))
            if stale.rowcount:  # type: ignore[attr-defined]
                self._event(session, case.id, at, "customer notice",
                            "withdrawn: resolved before the end of quiet hours")
            self._team_update(session, case, "resolved", f"resolved-{case.reopened}",
                              f"The device recovered; the case resolved itself ({detail}).")
            session.commit()
            return case.id

    def note(self, tenant: str, device_id: str, group: str, at: float, kind: str,
             detail: str) -> None:
        """Add a line to the timeline of a group's open case (if any)."""
        key = f"{tenant}/{device_id}/{group}"
        with Session(self.engine) as session:
            case_id = session.scalar(select(CaseRow.id).where(CaseRow.open_key == key))
            if case_id is not None:
                self._event(session, case_id, at, kind, detail)
                session.commit()

    def acknowledge(self, case_id: int, by: str = "") -> bool:
        """Mark a case acknowledged by the team (stops escalation)."""
        now = self.clock()
        with Session(self.engine) as session:
            done = session.execute(update(CaseRow).where(
                CaseRow.id == case_id, CaseRow.status == "open")
                .values(status="acknowledged", acknowledged_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return False
            self._event(session, case_id, now, "acknowledged", by)
            session.commit()
            return True

    def escalate_due(self, now: float | None = None) -> list[int]:
        """Escalate open cases nobody acknowledged in time; returns their ids."""
        now = self.clock() if now is None else now
        escalated: list[int] = []
        with Session(self.engine, expire_on_commit=False) as session:
            # a customer who booked a visit (or said it is fine) has stopped escalation
            answered = select(CustomerAnswerRow.case_id).where(
                CustomerAnswerRow.kind.in_(("visit", "fine")))
            candidates = session.scalars(select(CaseRow).where(
                CaseRow.status == "open", CaseRow.escalated_at.is_(None),
                CaseRow.id.not_in(answered))).all()
            for case in candidates:
                after = (case.escalate_after_s if case.escalate_after_s is not None
                         else self.policy.escalate_after)
                if now - case.opened_at < after:
                    continue
                severity = _NEXT_SEVERITY.get(case.severity, case.severity)
                done = session.execute(update(CaseRow).where(
                    CaseRow.id == case.id, CaseRow.escalated_at.is_(None),
                    CaseRow.status == "open").values(escalated_at=now, severity=severity))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                case.severity = severity
                self._event(session, case.id, now, "escalated",
                            f"not acknowledged within {after / 3600:.1f} h → {severity}")
                self._team_update(session, case, "escalated", f"escalated-{case.reopened}",
                                  f"Nobody acknowledged it within {after / 3600:.1f} h; "
                                  f"severity is now {severity}.")
                escalated.append(case.id)
            session.commit()
        return escalated

    def add_ticket(self, customer_id: str, device_id: str) -> int:
        """Record a ticket the customer opened (their notices about the device are held)."""
        with Session(self.engine) as session:
            ticket = TicketRow(customer_id=customer_id, device_id=device_id,
                               opened_at=self.clock())
            session.add(ticket)
            session.commit()
            return ticket.id

    def close_ticket(self, ticket_id: int) -> None:
        """The customer's ticket is done."""
        with Session(self.engine) as session:
            session.execute(update(TicketRow).where(TicketRow.id == ticket_id)
                            .values(closed_at=self.clock()))
            session.commit()

    # -- reading -----------------------------------------------------------------------------

    def cases(self) -> list[CaseRow]:
        """Every case, oldest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(CaseRow).order_by(CaseRow.id)))

    def case(self, case_id: int) -> CaseRow | None:
        """One case."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(CaseRow, case_id)

    def timeline(self, case_id: int) -> list[CaseEventRow]:
        """A case's timeline, oldest first."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(CaseEventRow).where(
                CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)))

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _event(session: Session, case_id: int, ts: float, kind: str, detail: str) -> None:
        session.add(CaseEventRow(case_id=case_id, ts=ts, kind=kind, detail=detail))

    def _team_update(self, session: Session, case: CaseRow, kind: str, key_suffix: str,
                     detail: str) -> None:
        subject, body = update_message(kind, case.id, case.severity, case.device_id,
                                       case.rules or case.rule, detail)
        session.add(NoticeRow(
            case_id=case.id, tenant=case.tenant, device_id=case.device_id, audience="team",
            kind=kind, customer_id=case.customer_id, channel=self.team_channel,
            recipient=self.team_recipient, idempotency_key=f"case-{case.id}-team-{key_suffix}",
            subject=subject, body=body, status="pending", attempts=0, next_attempt_at=0.0,
            created_at=self.clock(),
        ))
