"""Streaming a simulated fleet, in the order its batches would reach the server, through the
very :class:`~core.pipeline.CorePipeline` (dedup → detect) and
:class:`~rules.pipeline.RulesPipeline` (rules → cases → notices) the services run, on simulated
time. Only the broker and the time-series store are left out: the store is a no-op here, since
nothing reads it back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.detect import make_detector, make_peer
from core.events import DetectorEvent
from core.limits import load_limits
from core.pipeline import CorePipeline
from core.store.null import NullStore
from firmware_sim.fleet import Delivery, Fleet
from forewarn.peers import registry_peer_labels
from forewarn.sim.agents import SimAgent
from forewarn.sim.incidents import SimIncident, collect_incidents
from forewarn.sim.match import SimCase
from forewarn.sim.options import EvalOptions, TimelineTrace
from forewarn.sim.peer_report import PEER_DETECTORS, PeerFlag
from rules.cases import CaseBook, CaseOutcome
from rules.db import CaseRow, DeviceRow, FirmwareChangeRow, NoticeRow, connect
from rules.evaluate import Alarm
from rules.incidents import IncidentBook
from rules.model import load_rule_dir
from rules.pipeline import RulesPipeline
from rules.registry import CustomerRegistry, DeviceMeta, registry_from_dict

__all__ = ["stream_fleet"]

#: a tick runs this long after a window's batches arrived (network latency, clock skew)
_TICK_SLACK_S = 600.0


class _SimClock:
    """Simulated time for the rules: each batch's arrival, or the arrival of an alarm's sample."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _SimCaseBook(CaseBook):
    """The case book on simulated time: an alarm is recorded at the moment the sample that
    fired it would have reached a live server (with the agent's own small batches), although
    the evaluation streams long batches for speed."""

    def __init__(self, engine: Engine, clock: _SimClock,
                 registry: CustomerRegistry | None = None,
                 incidents: IncidentBook | None = None) -> None:
        super().__init__(engine, channel="sim", clock=clock, registry=registry,
                         incidents=incidents)
        self.sim_clock = clock
        self.delivery: Delivery | None = None
        #: cases opened or reopened, in order (what simulated agents judge)
        self.new_cases: list[CaseRow] = []
        #: how much longer than a live service the peer detector waits before it judges a
        #: bucket here (``stream_fleet``): a flag is recorded that much earlier
        self.peer_wait_s = 0.0

    def record_flag(self, event: DetectorEvent, meta: DeviceMeta | None = None) -> int | None:
        """Record ``event``'s flag when a live service would have raised it, then as usual.

        The evaluation's peer detector judges a bucket ``peer_wait_s`` later than the
        service's (every peer's long batch covering it must be in), on the same members and
        so with the same score: a live service, whose batches are 10 minutes long, raises the
        flag that much sooner, at the arrival of the sample that made the bucket due there.
        """
        if self.peer_wait_s > 0.0:
            event = dataclasses.replace(event, ts=event.ts - self.peer_wait_s)
        if self.delivery is not None:
            self.sim_clock.now = _arrival_of(self.delivery, event.ts + self.peer_wait_s
                                             ) - self.peer_wait_s
        return super().record_flag(event, meta)

    def record_alarm(self, alarm: Alarm, meta: DeviceMeta | None = None) -> CaseOutcome:
        """Record ``alarm`` at its sample's arrival, then as usual."""
        if self.delivery is not None:
            self.sim_clock.now = _arrival_of(self.delivery, alarm.fired_at)
        outcome = super().record_alarm(alarm, meta)
        if outcome.kind in ("opened", "reopened") and outcome.case is not None:
            self.new_cases.append(outcome.case)
        return outcome


def _arrival_of(delivery: Delivery, ts: float) -> float:
    """When the sample of ``delivery`` taken at ``ts`` (device clock) reached the server."""
    if delivery.sample_arrival is None:
        return delivery.arrival
    i = int(np.searchsorted(delivery.t, ts))
    if i < delivery.t.shape[0] and delivery.t[i] == ts:
        return float(delivery.sample_arrival[i])
    return delivery.arrival


def _cases_from(engine: Engine, no_data_rules: frozenset[str]) -> list[SimCase]:
    """Every case the rules opened or reopened, timed by its notices: the team's notice says
    when the case opened (or reopened), the customer's (unless suppressed) when the customer
    heard, after quiet hours."""
    with Session(engine) as session:
        rows = {row.id: row for row in session.scalars(select(CaseRow))}
        notices = list(session.scalars(select(NoticeRow).where(
            NoticeRow.kind.in_(("opened", "reopened", "incident")))))
    # a case of a fleet incident: its customer heard by the incident's message
    customer = {n.case_id: max(n.created_at, n.next_attempt_at) for n in notices
                if n.audience == "customer" and n.kind in ("opened", "incident")
                and n.status != "suppressed"}
    out: list[SimCase] = []
    for notice in notices:
        row = None if notice.case_id is None else rows.get(notice.case_id)
        if notice.audience != "team" or notice.kind == "incident" or row is None:
            continue
        opened = notice.kind == "opened"
        out.append(SimCase(
            device_id=row.device_id, product=row.product, rule=row.rule, severity=row.severity,
            customer_notice=opened and row.id in customer, noticed_at=notice.created_at,
            opened_at=row.opened_at, field=row.field,
            notified_at=customer.get(row.id) if opened else None, reopened=not opened,
            no_data=row.rule in no_data_rules))
    return sorted(out, key=lambda c: c.noticed_at)


def _registry(fleet: Fleet) -> CustomerRegistry:
    """The simulated fleet's customer registry: each device its own customer (as an unknown
    device would be), with its model, firmware, batch and region (``rules.cohorts``)."""
    return registry_from_dict({
        "customers": [{"id": f"{d.tenant}/{d.device_id}"} for d in fleet.devices],
        "devices": {d.device_id: {"customer": f"{d.tenant}/{d.device_id}",
                                  "product": d.product.name, **d.cohort}
                    for d in fleet.devices}}, source="simulated fleet", tenant=fleet.config.tenant)


def _firmware_reported(engine: Engine, tenant: str, device_id: str, product: str,
                       version: str, at: float, previous: str | None) -> None:
    """A device installed a release and says so (what its status messages put in the devices
    table and its firmware history, ``rules.lifecycle``)."""
    with Session(engine) as session, session.begin():
        session.add(FirmwareChangeRow(tenant=tenant, device_id=device_id, product=product,
                                      firmware=version, previous=previous, since=at))
        row = session.get(DeviceRow, (tenant, device_id))
        if row is None:
            row = DeviceRow(tenant=tenant, device_id=device_id, product=product,
                            state="unknown", boot_id="", queue_depth=0, dropped_samples=0,
                            desired_json="", reported_json="")
            session.add(row)
        row.product, row.firmware = product, version


def stream_fleet(options: EvalOptions, fleet: Fleet, traces: dict[str, TimelineTrace],
                 progress: Callable[[float], None] = lambda _: None,
                 ) -> tuple[list[SimCase], int, int, list[SimIncident], list[PeerFlag]]:
    """Stream ``fleet`` through fresh pipelines; the cases, samples and batches streamed, the
    fleet incidents opened, and the peer detector's flags (its events, after the learning
    days)."""
    limits = load_limits(options.limits) if options.limits is not None else None
    # a bucket is judged once every peer's batch covering it arrived: the evaluation's long
    # batches need a longer wait than a live service's 10-minute ones (docs/detection.md)
    peer_config = options.peer.model_copy(update={
        "lag_s": max(options.peer.lag_s, options.batch_s + options.peer.bucket_s)})
    peer_wait_s = (peer_config.lag_s - options.peer.lag_s) if options.live_flags else 0.0
    registry = _registry(fleet)
    # peers: every device of the product (as before the drift score: splitting them by the
    # registry's model and region, as the service does, raised the false cases of tuning seed
    # 14 from 2 to 9); cohorts and the drift score's pools: firmware and batch, from the registry
    core = CorePipeline(make_detector(options.detector), NullStore(), limits=limits,
                        peer=make_peer(peer_config),
                        peer_labels=registry_peer_labels(registry, group_dimensions=()))
    flags: list[PeerFlag] = []
    clock = _SimClock(fleet.config.start)
    engine = connect("sqlite://")
    book = _SimCaseBook(engine, clock, registry, IncidentBook(options.incidents, registry))
    book.peer_wait_s = peer_wait_s
    ruleset = load_rule_dir(options.rules_dir)
    rules = RulesPipeline(ruleset, book)
    updates = sorted((d.firmware_update[0], d.device_id, d.product.name, d.firmware_update[1])
                     for d in fleet.devices if d.firmware_update is not None)
    agent = SimAgent(engine, fleet, rules.feedback) if options.agents else None
    samples = batches = 0
    # the service ticks every minute or so; here a tick comes once a whole window of batches
    # has arrived (a tick between would see every device silent since its last long batch)
    window = options.batch_s
    next_tick = fleet.config.start + options.learn_days * 86_400.0 + window + _TICK_SLACK_S
    learning_until = fleet.config.start + options.learn_days * 86_400.0
    span = max(fleet.config.end - fleet.config.start, 1.0)
    for delivery in fleet.deliveries(batch_s=options.batch_s):
        if batches % 256 == 0:
            progress(min(max((delivery.arrival - fleet.config.start) / span, 0.0), 1.0))
        if delivery.arrival < learning_until:
            # detectors learn the first day(s), as a running service has learned from history
            core.process(delivery.tenant, delivery.to_batch(validate=False))
            samples += delivery.t.shape[0]
            batches += 1
            continue
        while delivery.arrival >= next_tick and next_tick <= fleet.config.end:
            # (no tick after the run: every device would look silent)
            # what the service does now and then: silent devices, escalation
            clock.now = next_tick
            rules.tick(next_tick)
            next_tick += window
        while updates and updates[0][0] <= delivery.arrival:
            at, device_id, product, version = updates.pop(0)
            _firmware_reported(engine, fleet.config.tenant, device_id, product, version, at,
                               registry.lookup(fleet.config.tenant, device_id,
                                               product).firmware or None)
        clock.now = delivery.arrival
        book.delivery = delivery
        if delivery.device_id in traces:
            trace = traces[delivery.device_id]
            trace.t.append(delivery.t)
            trace.values.append(delivery.values)
        scored = core.process(delivery.tenant, delivery.to_batch(validate=False))
        samples += delivery.t.shape[0]
        batches += 1
        if scored is not None:
            flags.extend(PeerFlag(e.device_id, e.detector, e.ts, e.field) for e in scored.events
                         if e.detector in PEER_DETECTORS)
            rules.handle(scored)
            if agent is not None:
                agent.mark(book.new_cases, clock.now)
    cases = _cases_from(engine, frozenset(r.name for r in ruleset.rules if r.is_no_data_rule))
    incidents = collect_incidents(engine)
    engine.dispose()
    progress(1.0)
    return cases, samples, batches, incidents, flags
