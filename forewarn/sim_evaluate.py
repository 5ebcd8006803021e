"""``forewarn sim evaluate``: stream a simulated fleet through core and rules, in-process, and
measure how often the customer hears from us before they call.

The fleet's batches go, in the order they would reach the server, through the very
:class:`~core.pipeline.CorePipeline` (dedup → detect) and :class:`~rules.pipeline.RulesPipeline`
(rules → cases → notices) the services run. Only the broker and the time-series store are left
out: the store is a no-op here, since nothing reads it back. Then the cases are matched to the
ground truth, which detectors and rules never see.

Matching (:func:`match_cases`): a case belongs to a fault when it is on the faulty device and was
noticed no earlier than ``grace_s`` before the fault's onset; every other case is a false case.
A fault is *notified before the call* when a case with a customer notice came before the call.

>>> from firmware_sim.truth import FaultTruth
>>> leak = FaultTruth("hp-1", "heat_pump", "refrigerant_leak", onset=0.0, visible=3600.0,
...                   call=7200.0, course="slow")
>>> case = SimCase("hp-1", "heat_pump", "r", "warning", customer_notice=True, noticed_at=1800.0)
>>> result = match_cases([leak], [case], horizon_end=10_000.0)
>>> result.faults[0].outcome, result.faults[0].lead_time_s, result.false_cases
('before_call', 5400.0, [])
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.detect import DetectorConfig, make_detector
from core.limits import load_limits
from core.pipeline import CorePipeline
from core.store.null import NullStore
from firmware_sim.calls import CallModel
from firmware_sim.fleet import Delivery, Fleet, FleetConfig, FleetFault, SimDevice
from firmware_sim.imperfections import Imperfections
from firmware_sim.products import PRODUCTS
from firmware_sim.truth import FaultTruth, write_jsonl
from forewarn.text import plural
from rules import case_actions
from rules.cases import CaseBook, CaseOutcome
from rules.db import CaseRow, NoticeRow, connect
from rules.errors import CaseStateError
from rules.evaluate import Alarm
from rules.feedback import FeedbackPolicy, learn_false_alarm
from rules.model import load_rule_dir
from rules.pipeline import RulesPipeline
from rules.registry import DeviceMeta
from rules.resolution import Resolution

__all__ = [
    "EvalOptions",
    "Evaluation",
    "FaultMatch",
    "MatchResult",
    "Outcome",
    "SimCase",
    "TimelineTrace",
    "evaluate",
    "match_cases",
    "report",
    "run_evaluation",
    "write_plots",
]

#: what became of a fault: the customer was notified before calling; forewarn opened a case but
#: the customer heard nothing before calling (``after_call``); no case at all (``missed``); the
#: customer never calls (``no_call``, e.g. a fault they never see); the call is after the run
Outcome = Literal["before_call", "after_call", "missed", "no_call", "call_after_horizon"]

_H = 3600.0
#: a tick runs this long after a window's batches arrived (network latency, clock skew)
_TICK_SLACK_S = 600.0
#: a no-data case noticed up to this long after a simulated outage ended is explained by it
_OUTAGE_SLACK_S = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class SimCase:
    """A case the rules opened, as the evaluation sees it.

    ``noticed_at`` is true time: when the server had the sample that opened the case (and so
    when its notices went out); ``opened_at`` is the sample's time on the device's clock.
    """

    device_id: str
    product: str
    rule: str
    severity: str
    customer_notice: bool
    noticed_at: float
    opened_at: float = 0.0
    field: str = ""
    #: when the customer notice went out (after quiet hours); defaults to ``noticed_at``
    notified_at: float | None = None
    #: a resolved case that opened again (the team hears, the customer is not told again)
    reopened: bool = False
    #: opened by a no-data rule (the device went silent), not by its telemetry
    no_data: bool = False

    @property
    def customer_heard_at(self) -> float | None:
        """When the customer heard from us through this case (None: not through this one)."""
        if not self.customer_notice:
            return None
        return self.notified_at if self.notified_at is not None else self.noticed_at


@dataclass(slots=True)
class FaultMatch:
    """One fault of the ground truth and what forewarn did about it."""

    truth: FaultTruth
    outcome: Outcome
    #: the first case that belongs to the fault, and the first with a customer notice
    detected_at: float | None = None
    notified_at: float | None = None
    #: seconds between the customer notice and the call (positive: we were first)
    lead_time_s: float | None = None
    cases: list[SimCase] = field(default_factory=list)


@dataclass(slots=True)
class MatchResult:
    """Every fault's match, and the cases no fault explains."""

    faults: list[FaultMatch]
    false_cases: list[SimCase]
    #: customer notices sent for faults the customer would never have noticed
    notices_for_invisible: int = 0
    #: no-data cases explained by a simulated outage (power or network)
    offline_cases: list[SimCase] = field(default_factory=list)


def match_cases(truths: Sequence[FaultTruth], cases: Sequence[SimCase], horizon_end: float,
                grace_s: float = 0.0,
                outages: dict[str, NDArray[np.float64]] | None = None) -> MatchResult:
    """Match cases to the faults of the ground truth (see the module docstring).

    A call after ``horizon_end`` has not happened yet: such a fault counts as
    ``call_after_horizon``, neither won nor lost. A no-data case on a device that the simulation
    took offline (``outages``: rows of start, end per device) is an offline case, not a false
    one, whether or not the device also has a fault.
    """
    offline: list[SimCase] = []
    if outages is not None:
        kept = []
        for case in cases:
            spans = outages.get(case.device_id)
            if case.no_data and spans is not None and bool(np.any(
                    (spans[:, 0] <= case.noticed_at)
                    & (case.noticed_at <= spans[:, 1] + _OUTAGE_SLACK_S))):
                offline.append(case)
            else:
                kept.append(case)
        cases = kept
    by_device: dict[str, list[SimCase]] = {}
    for case in sorted(cases, key=lambda c: c.noticed_at):
        by_device.setdefault(case.device_id, []).append(case)
    faults_of: dict[str, list[FaultTruth]] = {}
    for truth in truths:
        faults_of.setdefault(truth.device_id, []).append(truth)
    matched: set[int] = set()
    faults: list[FaultMatch] = []
    invisible_notices = 0
    for truth in truths:
        mine = [c for c in by_device.get(truth.device_id, [])
                if c.noticed_at >= truth.onset - grace_s]
        matched.update(id(c) for c in mine)
        detected = mine[0].noticed_at if mine else None
        heard = [c.customer_heard_at for c in mine if c.customer_heard_at is not None]
        notified = min(heard) if heard else None
        if truth.visible is None:
            invisible_notices += sum(c.customer_notice for c in mine)
        lead: float | None = None
        outcome: Outcome
        if truth.call is None:
            outcome = "no_call"
        elif notified is not None and notified < truth.call:
            outcome, lead = "before_call", truth.call - notified
        elif truth.call > horizon_end:
            outcome = "call_after_horizon"
        elif notified is not None or detected is not None:
            outcome = "after_call"
        else:
            outcome = "missed"
        faults.append(FaultMatch(truth, outcome, detected, notified, lead, mine))
    false_cases = [c for c in cases if id(c) not in matched]
    return MatchResult(faults, false_cases, invisible_notices, offline)


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
           learn_days: float = 0.0, start: float | None = None) -> dict[str, Any]:
    """The evaluation's figures as a JSON-ready dict (overall, per fault kind, product, course).

    ``device_days`` counts the days after the detectors' learning days (when rules ran); with
    ``start`` (the run's first second) the false-case rate is also given for the first and the
    second half of those days (simulated agents marking false cases should lower the second).
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
    shared = [m for m in result.faults if m.truth.fleet_fault]
    out["fleet_faults_injected"] = len({m.truth.fleet_fault for m in shared})
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


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """What to simulate and how to stream it."""

    devices: int = 100
    days: float = 7.0
    seed: int = 1
    products: tuple[str, ...] = tuple(PRODUCTS)
    fault_fraction: float = 0.25
    #: limit the faults injected to these kinds (empty: every kind)
    fault_kinds: tuple[str, ...] = ()
    #: rules files: every ``*.yaml`` in this directory
    rules_dir: Path = Path("config/rules")
    #: the evaluation streams batches this long (bigger is faster; notices are still timed by
    #: the agent's own 10-minute batches, see :class:`firmware_sim.fleet.Delivery`)
    batch_s: float = 6 * 3600.0
    imperfections: Imperfections = field(default_factory=Imperfections)
    call_model: CallModel = field(default_factory=CallModel)
    #: the service's profile for fleets (settings [detector] layer over it)
    detector: DetectorConfig = field(default_factory=DetectorConfig.for_fleet)
    #: the first days only teach the detectors (no rules, no faults): a running service has
    #: learned from history; false cases are counted over the days after
    learn_days: float = 1.0
    #: product limits (``config/limits.yaml``) core hands to each device's detector; None: none
    limits: Path | None = Path("config/limits.yaml")
    #: processes, each streaming a share of the devices through its own pipelines
    workers: int = 1
    #: how many faulty devices to keep telemetry of, for timeline plots
    trace: int = 0
    #: simulated agents resolve each false case as ``false_alarm`` as it opens (issue 20), so
    #: the rules learn from them (``rules.feedback``, default bounds)
    agents: bool = False
    #: faults shared by a cohort (``firmware_sim.fleet.FLEET_FAULTS`` with ``--fleet-faults``)
    fleet_faults: tuple[FleetFault, ...] = ()

    def fleet_config(self) -> FleetConfig:
        """The fleet these options describe; faults start after the learning days."""
        horizon = self.days * 86_400.0
        first = min(0.5, self.learn_days * 86_400.0 / horizon)
        return FleetConfig(
            devices=self.devices, seed=self.seed, products=self.products, tenant="sim",
            horizon_s=horizon, fault_fraction=self.fault_fraction, fault_kinds=self.fault_kinds,
            onset_window=(first, max(first, 0.7)),
            fault_ramp_s=min(48 * _H, 0.5 * horizon), call_model=self.call_model,
            imperfections=self.imperfections, fleet_faults=self.fleet_faults,
        )


@dataclass(slots=True)
class TimelineTrace:
    """Telemetry of one device kept for a timeline plot (true time)."""

    fields: tuple[str, ...]
    t: list[NDArray[np.float64]] = field(default_factory=list)
    values: list[NDArray[np.float64]] = field(default_factory=list)


@dataclass(slots=True)
class Evaluation:
    """Everything a run produced."""

    options: EvalOptions
    fleet: Fleet
    cases: list[SimCase]
    result: MatchResult
    report: dict[str, Any]
    traces: dict[str, TimelineTrace]


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

    def __init__(self, engine: Engine, clock: _SimClock) -> None:
        super().__init__(engine, channel="sim", clock=clock)
        self.sim_clock = clock
        self.delivery: Delivery | None = None
        #: cases opened or reopened, in order (what simulated agents judge)
        self.new_cases: list[CaseRow] = []

    def record_alarm(self, alarm: Alarm, meta: DeviceMeta | None = None) -> CaseOutcome:
        """Record ``alarm`` at its sample's arrival, then as usual."""
        if self.delivery is not None:
            self.sim_clock.now = _arrival_of(self.delivery, alarm.fired_at)
        outcome = super().record_alarm(alarm, meta)
        if outcome.kind in ("opened", "reopened") and outcome.case is not None:
            self.new_cases.append(outcome.case)
        return outcome


class _SimAgent:
    """A support agent who knows the ground truth: every new case on a device without a fault
    (or before its onset) is resolved as a false alarm at once; the feedback it causes reaches
    the rules at their next tick, as in a running service."""

    def __init__(self, engine: Engine, fleet: Fleet, policy: FeedbackPolicy) -> None:
        self.engine = engine
        self.policy = policy
        self.onsets = {d.device_id: d.truth.onset for d in fleet.devices if d.truth is not None}
        self.seen = 0

    def mark(self, opened: Sequence[CaseRow], now: float) -> None:
        """Judge the cases opened (or reopened) since the last call."""
        for case in opened[self.seen:]:
            onset = self.onsets.get(case.device_id)
            if onset is not None and case.opened_at >= onset:
                continue  # a real fault: nothing to loosen
            try:
                case_actions.resolve(self.engine, case.tenant, case.id, by="sim agent",
                                     comment="", now=now, feedback=self.policy,
                                     resolution=Resolution("false_alarm", reason="unknown"))
            except CaseStateError:  # resolved itself already: the agent's verdict still counts
                with Session(self.engine) as session:
                    learn_false_alarm(session, case, "sim agent", now, self.policy)
                    session.commit()
        self.seen = len(opened)


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
            NoticeRow.kind.in_(("opened", "reopened")))))
    customer = {n.case_id: max(n.created_at, n.next_attempt_at) for n in notices
                if n.audience == "customer" and n.kind == "opened" and n.status != "suppressed"}
    out: list[SimCase] = []
    for notice in notices:
        row = rows.get(notice.case_id)
        if notice.audience != "team" or row is None:
            continue
        opened = notice.kind == "opened"
        out.append(SimCase(
            device_id=row.device_id, product=row.product, rule=row.rule, severity=row.severity,
            customer_notice=opened and row.id in customer, noticed_at=notice.created_at,
            opened_at=row.opened_at, field=row.field,
            notified_at=customer.get(row.id) if opened else None, reopened=not opened,
            no_data=row.rule in no_data_rules))
    return sorted(out, key=lambda c: c.noticed_at)


#: the share of simulated time each worker process has streamed (inherited through fork)
_SHARD_DONE: Any = None


def _shard_done(shard: int, fraction: float) -> None:
    """A worker's progress, into the array its parent reads."""
    if _SHARD_DONE is not None:
        _SHARD_DONE[shard] = fraction


def _stream(options: EvalOptions, fleet: Fleet, traces: dict[str, TimelineTrace],
            progress: Callable[[float], None] = lambda _: None,
            ) -> tuple[list[SimCase], int, int]:
    limits = load_limits(options.limits) if options.limits is not None else None
    core = CorePipeline(make_detector(options.detector), NullStore(), limits=limits)
    clock = _SimClock(fleet.config.start)
    engine = connect("sqlite://")
    book = _SimCaseBook(engine, clock)
    ruleset = load_rule_dir(options.rules_dir)
    rules = RulesPipeline(ruleset, book)
    agent = _SimAgent(engine, fleet, rules.feedback) if options.agents else None
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
            rules.handle(scored)
            if agent is not None:
                agent.mark(book.new_cases, clock.now)
    cases = _cases_from(engine, frozenset(r.name for r in ruleset.rules if r.is_no_data_rule))
    engine.dispose()
    progress(1.0)
    return cases, samples, batches


@dataclass(slots=True)
class _ShardResult:
    cases: list[SimCase]
    samples: int
    batches: int
    traces: dict[str, TimelineTrace]


def _run_shard(options: EvalOptions, shard: int, shards: int, traced: tuple[str, ...],
               progress: Callable[[float], None] | None = None) -> _ShardResult:
    """Stream every ``shards``-th device, starting at ``shard``: devices are independent (their
    detector state and rule state are their own), so shards can run on separate cores."""
    fleet = Fleet(options.fleet_config())
    fleet.devices = fleet.devices[shard::shards]
    traces = {d.device_id: TimelineTrace(d.product.fields)
              for d in fleet.devices if d.device_id in traced}
    report = progress or functools.partial(_shard_done, shard)
    cases, samples, batches = _stream(options, fleet, traces, report)
    return _ShardResult(cases, samples, batches, traces)


def _pick_traced(fleet: Fleet, n: int) -> list[SimDevice]:
    """Up to ``n`` faulty devices whose customer calls, as many kinds of fault as possible."""
    calling = [d for d in fleet.devices if d.truth is not None and d.truth.call is not None]
    picked: list[SimDevice] = []
    kinds: set[str] = set()
    for device in calling:  # first one per kind, then the rest in order
        assert device.truth is not None
        if device.truth.kind not in kinds and len(picked) < n:
            picked.append(device)
            kinds.add(device.truth.kind)
    picked += [d for d in calling if d not in picked][: n - len(picked)]
    return picked


def run_evaluation(options: EvalOptions, out_dir: Path | None = None,
                   progress: Callable[[float], None] = lambda _: None) -> Evaluation:
    """Simulate, stream, match and report; write the ground truth into ``out_dir`` if given.

    ``progress`` hears the share of the simulated time streamed (0 to 1) now and then.
    """
    global _SHARD_DONE
    started = time.perf_counter()
    fleet = Fleet(options.fleet_config())
    if out_dir is not None:
        write_jsonl(out_dir / "ground_truth.jsonl", fleet.ground_truth)
    traces = {d.device_id: TimelineTrace(d.product.fields)
              for d in _pick_traced(fleet, options.trace)}
    shards = max(1, min(options.workers, options.devices))
    if shards == 1:
        results = [_run_shard(options, 0, 1, tuple(traces), progress)]
    else:
        context = multiprocessing.get_context("fork")
        _SHARD_DONE = context.Array("d", shards, lock=False)
        try:
            with ProcessPoolExecutor(max_workers=shards, mp_context=context) as pool:
                futures = [pool.submit(_run_shard, options, shard, shards, tuple(traces))
                           for shard in range(shards)]
                while True:
                    done, running = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                    if not running or any(f.exception() is not None for f in done):
                        break
                    progress(sum(_SHARD_DONE) / shards)
                results = [f.result() for f in futures]
        finally:
            _SHARD_DONE = None
        progress(1.0)
    cases = sorted((c for r in results for c in r.cases), key=lambda c: c.noticed_at)
    samples = sum(r.samples for r in results)
    batches = sum(r.batches for r in results)
    for r in results:
        traces.update(r.traces)
    outages = {d.device_id: d.imperfections.outages for d in fleet.devices}
    result = match_cases(fleet.ground_truth, cases, fleet.config.end, outages=outages)
    elapsed = time.perf_counter() - started
    figures = report(result, devices=options.devices, days=options.days,
                     learn_days=options.learn_days, start=fleet.config.start)
    figures["agents_mark_false_cases"] = options.agents
    figures.update({
        "seed": options.seed,
        "cases": len(cases),
        "samples": samples,
        "batches": batches,
        "run_time_s": round(elapsed, 2),
        "samples_per_s": round(samples / elapsed) if elapsed > 0 else None,
    })
    return Evaluation(options, fleet, cases, result, figures, traces)


def evaluate(devices: int, days: float, seed: int, **overrides: Any) -> dict[str, Any]:
    """Run one evaluation and return its report (a shortcut for scripts and benchmarks)."""
    options = dataclasses.replace(EvalOptions(devices=devices, days=days, seed=seed),
                                  **overrides)
    return run_evaluation(options).report


# -- pictures ------------------------------------------------------------------------------------


def write_plots(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """Write the PNGs a support lead wants: lead times per fault kind, and device timelines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    start = evaluation.fleet.config.start

    kinds = sorted({m.truth.kind for m in evaluation.result.faults if m.truth.call is not None})
    if kinds:
        fig, axes = plt.subplots(len(kinds), 1, figsize=(8, 1.8 * len(kinds) + 1),
                                 sharex=True, squeeze=False)
        for ax, kind in zip(axes[:, 0], kinds, strict=True):
            ms = [m for m in evaluation.result.faults
                  if m.truth.kind == kind and m.truth.call is not None]
            leads = [(m.truth.call - m.notified_at) / _H for m in ms
                     if m.notified_at is not None and m.truth.call is not None]
            missed = sum(m.notified_at is None for m in ms)
            if leads:  # two-hour bins shared by every kind, so the bars compare
                edges = np.arange(np.floor(min(min(leads), 0.0) / 2) * 2,
                                  max(max(leads), 0.0) + 4.0, 2.0)
                ax.hist(leads, bins=edges, color="tab:green", alpha=0.8)
            ax.axvline(0.0, color="tab:red", lw=1)
            ax.set_ylabel(kind.replace("_", "\n"), rotation=0, ha="right", fontsize=8)
            ax.text(0.99, 0.8, f"{len(leads)} notified, {missed} not", ha="right",
                    transform=ax.transAxes, fontsize=8)
        axes[-1, 0].set_xlabel("hours from customer notice to the customer's call "
                               "(right of the red line: we were first)")
        fig.suptitle(f"Lead time before the call, per fault kind "
                     f"(seed {evaluation.options.seed}, "
                     f"{plural(evaluation.options.devices, 'device')}, "
                     f"{evaluation.options.days:g} days)")
        fig.tight_layout()
        path = out_dir / "lead_time_by_fault.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    by_device = {m.truth.device_id: m for m in evaluation.result.faults}
    for device_id, trace in evaluation.traces.items():
        if not trace.t:
            continue
        t = np.concatenate(trace.t)
        order = np.argsort(t, kind="stable")
        hours = (t[order] - start) / _H
        values = np.vstack(trace.values)[order]
        match = by_device.get(device_id)
        fig, axes = plt.subplots(len(trace.fields), 1, figsize=(11, 1.4 * len(trace.fields) + 1),
                                 sharex=True, squeeze=False)
        marks: list[tuple[str, float | None, str]] = []
        if match is not None:
            truth = match.truth
            marks = [("onset", truth.onset, "grey"), ("visible", truth.visible, "tab:orange"),
                     ("case opened", match.detected_at, "tab:blue"),
                     ("customer notice", match.notified_at, "tab:green"),
                     ("call", truth.call, "tab:red")]
        for ax, j in zip(axes[:, 0], range(len(trace.fields)), strict=True):
            ax.plot(hours, values[:, j], lw=0.5, color="black")
            ax.set_ylabel(trace.fields[j], rotation=0, ha="right", fontsize=8)
            for label, at, colour in marks:
                if at is not None:
                    ax.axvline((at - start) / _H, color=colour, lw=1.2, ls="--", label=label)
        if marks:
            axes[0, 0].legend(loc="upper left", fontsize=7, ncol=5)
        axes[-1, 0].set_xlabel("hours since the start of the run")
        title = device_id
        if match is not None:
            lead = ("" if match.lead_time_s is None
                    else f", notified {match.lead_time_s / _H:.1f} h before the call")
            title += f": {match.truth.kind} ({match.outcome.replace('_', ' ')}{lead})"
        fig.suptitle(title)
        fig.tight_layout()
        path = out_dir / f"timeline_{device_id}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
