"""The rules pipeline, wired in one place.

::

    scored batch ─▶ registry lookup ─▶ evaluate (state machine) ─▶ silence ─▶ inhibit
                 ─▶ case book (open / join / reopen / resolve, notices into the outbox)
    (case book)  ─▶ fleet incidents (rules.incidents): a new case links to its cohort's incident
    tick(now)    ─▶ no-data and offline transitions, escalation, quiet incidents closed, alarm
                    levels raised by false alarms (rules.feedback: read from the case
                    database, so the console's resolutions and undos reach the running service)
    (evaluate)   ─▶ quiet windows whose pattern came back while quiet are renewed (rules.feedback)
    lifecycle    ─▶ device book (online/offline/last seen, reported config), goodbyes, last
                    wills, agent events (rules.lifecycle)

Delivery is separate (:class:`rules.outbox.Outbox`), so a slow channel never holds up ingest.
The stages are plain synchronous calls: ``handle`` runs for every batch of every device (the
simulation drives 1000 devices × 30 days through it), and only a transition reaches SQL.
A service on an event loop calls the ``…_in_thread`` forms: the same calls on one thread of the
pipeline's own, so blocking SQL never stalls the loop and ``handle`` and ``tick`` never overlap.

Usage::

    rules = load_rules(path)
    pipeline = RulesPipeline(rules, CaseBook(connect(url), "terminal", time.time),
                             registry=load_registry(customers_path))
    pipeline.handle(scored_batch)         # every batch (the simulation, tests)
    pipeline.tick(time.time())            # now and then: silent devices, escalation
    pipeline.handle_lifecycle(event)      # a device's status, own event or config report
    await pipeline.handle_in_thread(b)    # the event sink a service gives core
    await pipeline.tick_in_thread(now)
    await pipeline.handle_lifecycle_in_thread(event)   # core's lifecycle listener's sink
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum

from core.events import LifecycleEvent, ScoredBatch
from rules.cases import CaseBook
from rules.db import CaseRow
from rules.evaluate import Alarm, RuleEvaluator, Transition
from rules.feedback import FeedbackPolicy, levels, renew_windows
from rules.inhibit import Inhibitor
from rules.lifecycle import DeviceBook, DeviceLifecycle
from rules.model import RuleSet
from rules.registry import CustomerRegistry
from rules.silence import Silencer, SilenceStore
from rules.states import StateStore

__all__ = ["PipelineStats", "RulesPipeline", "Suppressed"]


class Suppressed(StrEnum):
    """What held an alarm back from opening a case."""

    #: a silence or maintenance window matched
    SILENCE = "silence"
    #: another active alarm inhibits this one
    INHIBITION = "inhibition"


@dataclass(frozen=True, slots=True)
class _Suppression:
    by: Suppressed
    #: for people: the window's kind and name, or the inhibiting rule
    reason: str


@dataclass(slots=True)
class PipelineStats:
    """What the pipeline did, by outcome."""

    alarms: int = 0
    opened: int = 0
    joined: int = 0
    reopened: int = 0
    duplicates: int = 0
    silenced: int = 0
    inhibited: int = 0
    resolved: int = 0
    escalated: int = 0


class RulesPipeline:
    """Evaluates rules over every scored batch and turns alarm transitions into case changes."""

    def __init__(self, rules: RuleSet, casebook: CaseBook,
                 registry: CustomerRegistry | None = None, persist_states: bool = True,
                 feedback: FeedbackPolicy | None = None) -> None:
        self.rules = rules
        self.feedback = feedback or FeedbackPolicy()
        self.casebook = casebook
        if casebook.policy_from_rules:
            casebook.policy = rules.cases
        self.registry = registry or casebook.registry
        casebook.registry = self.registry
        self.store = StateStore(casebook.engine) if persist_states else None
        self.evaluator = RuleEvaluator(rules.rules, self.store.load() if self.store else None)
        self.silencer = Silencer(rules.silences)
        self.silence_store = SilenceStore(casebook.engine)
        self.silencer.refresh(self.silence_store, casebook.clock())
        self.inhibitor = Inhibitor(self.evaluator)
        self.refresh_feedback(casebook.clock())
        self.lifecycle = DeviceLifecycle(DeviceBook(casebook.engine), self.evaluator,
                                         self._apply)
        self.evaluator.goodbyes = self.lifecycle.book.goodbyes
        self.stats = PipelineStats()
        self._thread: ThreadPoolExecutor | None = None
        #: how far each device's own telemetry has been read (None: up to every tick's
        #: ``now``); the NATS workers set it to the device's partition's caught-up time
        self.device_clock: Callable[[str, str], float | None] | None = None
        #: cases this pipeline opened (new ones only), in order
        self.opened: list[CaseRow] = []
        #: (rule, device, reason) of alarms that opened no case because of a silence/inhibition
        self.suppressed: list[tuple[str, str, str]] = []
        #: (tenant, device) → rule → alarm held back by a silence or an inhibition
        self._held: dict[tuple[str, str], dict[str, Alarm]] = {}
        for (name, tenant, device_id), state in self.evaluator.states.items():
            rule = self.evaluator.by_name.get(name)
            if state.held and rule is not None:  # held before a restart: still held
                at = state.fired_at if state.fired_at is not None else state.since
                began = state.pending_since if state.pending_since is not None else at
                self._held.setdefault((tenant, device_id), {})[name] = Alarm(
                    rule, tenant, device_id, state.product, began, at, "", 0.0, 0.0,
                    kind="no_data" if rule.is_no_data_rule else "condition")

    @property
    def alarms(self) -> int:
        """Alarms that fired (any outcome)."""
        return self.stats.alarms

    async def handle_in_thread(self, batch: ScoredBatch) -> None:
        """:meth:`handle` on the pipeline's thread: the event sink a service gives core."""
        await asyncio.get_running_loop().run_in_executor(self._executor(), self.handle, batch)

    async def tick_in_thread(self, now: float, tenant: str = "") -> None:
        """:meth:`tick` on the pipeline's thread (never at the same time as :meth:`handle`)."""
        await asyncio.get_running_loop().run_in_executor(self._executor(), self.tick, now,
                                                         tenant)

    def close(self) -> None:
        """Let the pipeline's thread end (after what it was given)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _executor(self) -> ThreadPoolExecutor:
        # one thread: calls run one at a time, in the order given, as they did on the loop
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="rules-pipeline")
        return self._thread

    def handle(self, batch: ScoredBatch) -> None:
        """The stage chain for one batch."""
        self.lifecycle.observe(batch)
        meta = self.registry.lookup(batch.tenant, batch.device_id, batch.product)
        incidents = self.casebook.incidents
        if incidents is not None and batch.events:
            # flags first: an incident they open is there for the cases of this batch
            for event in batch.events:
                if event.detector in incidents.policy.flag_detectors:
                    self.casebook.record_flag(event, meta)
        transitions = self.evaluator.evaluate(batch, meta)
        if transitions:
            self._apply(transitions)
        if self.evaluator.quieted:  # a learned pattern came back while quiet: it lives on
            renew_windows(self.casebook.engine, self.evaluator.quieted,
                          self.casebook.clock(), self.feedback)
            self.evaluator.quieted.clear()
        if (batch.tenant, batch.device_id) in self._held and batch.n_samples:
            self._release(batch.tenant, batch.device_id, float(batch.t[-1]))
        self._persist()

    def tick(self, now: float, tenant: str = "") -> None:
        """Time-driven work: silences set meanwhile, devices gone silent (or never heard
        from), alarms a silence or inhibition held back, escalation."""
        self.silencer.refresh(self.silence_store, now)
        self.refresh_feedback(now)
        self._apply(self.evaluator.tick(now, tenant=tenant, installed=self.registry.installed(),
                                        device_clock=self.device_clock))
        for held_tenant, device_id in list(self._held):
            self._release(held_tenant, device_id, now)
        self._persist()
        self.lifecycle.flush()
        self.stats.escalated += len(self.casebook.escalate_due(now))
        if self.casebook.incidents is not None:
            self.casebook.incidents.close_quiet(self.casebook.engine, now)

    def refresh_feedback(self, now: float) -> None:
        """Read the alarm levels false alarms raised (and not undone or expired) at ``now``."""
        self.evaluator.levels = levels(self.casebook.engine, now, self.feedback.max_raise)

    def handle_lifecycle(self, event: LifecycleEvent) -> None:
        """A device's status, own event or config report."""
        self.lifecycle.handle(event)
        self._persist()

    async def handle_lifecycle_in_thread(self, event: LifecycleEvent) -> None:
        """:meth:`handle_lifecycle` on the pipeline's thread: the sink of core's lifecycle
        listener (never at the same time as a batch or a tick)."""
        await asyncio.get_running_loop().run_in_executor(self._executor(),
                                                         self.handle_lifecycle, event)

    def _persist(self) -> None:
        dirty = self.evaluator.take_dirty()
        if dirty and self.store is not None:
            self.store.save(dirty)

    def _apply(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            rule = tr.rule
            if tr.alarm is not None:
                self.stats.alarms += 1
                self._record(tr.alarm, tr.at)
            elif tr.kind == "resolved":
                self._unhold(tr.tenant, tr.device_id, rule.name)
                group = [r.name for r in self.rules.rules if r.group_name == rule.group_name]
                if not self.evaluator.active(group, tr.tenant, tr.device_id) and (
                        self.casebook.resolve(tr.tenant, tr.device_id, rule.group_name, tr.at,
                                              f"{rule.name} clear") is not None):
                    self.stats.resolved += 1
            elif tr.kind == "flapping":
                self.casebook.note(tr.tenant, tr.device_id, rule.group_name, tr.at, "flapping",
                                   f"{rule.name} keeps firing and clearing; held open")

    def _suppression(self, alarm: Alarm, at: float) -> _Suppression | None:
        """Why an alarm may not open a case now (None: it may)."""
        meta = self.registry.lookup(alarm.tenant, alarm.device_id, alarm.product)
        window = self.silencer.match(alarm.rule.name, meta, at)
        if window is not None:
            return _Suppression(Suppressed.SILENCE, f"{window.kind} {window.name}")
        inhibitor = self.inhibitor.inhibiting(alarm.rule, alarm.tenant, alarm.device_id)
        if inhibitor is not None:
            return _Suppression(Suppressed.INHIBITION, f"inhibited by {inhibitor}")
        return None

    def _record(self, alarm: Alarm, at: float) -> None:
        suppression = self._suppression(alarm, at)
        if suppression is not None:
            if suppression.by is Suppressed.INHIBITION:
                self.stats.inhibited += 1
            else:
                self.stats.silenced += 1
            self.suppressed.append((alarm.rule.name, alarm.device_id, suppression.reason))
            # held back, not forgotten: still firing when the window ends → a case then
            self._held.setdefault((alarm.tenant, alarm.device_id), {})[alarm.rule.name] = alarm
            self._mark_held(alarm.rule.name, alarm.tenant, alarm.device_id, True)
            return
        meta = self.registry.lookup(alarm.tenant, alarm.device_id, alarm.product)
        outcome = self.casebook.record_alarm(alarm, meta)
        if outcome.kind == "opened" and outcome.case is not None:
            self.stats.opened += 1
            self.opened.append(outcome.case)
        elif outcome.kind == "joined":
            self.stats.joined += 1
        elif outcome.kind == "reopened":
            self.stats.reopened += 1
        else:
            self.stats.duplicates += 1

    def _release(self, tenant: str, device_id: str, now: float) -> None:
        """Open the cases of held alarms that are still active and no longer suppressed."""
        held = self._held[(tenant, device_id)]
        for name, alarm in list(held.items()):
            status = self.evaluator.status(name, tenant, device_id)
            if status == "recovering" or (status == "no_data" and not alarm.rule.is_no_data_rule):
                continue  # getting better (or silent): open nothing yet, forget nothing
            if status not in ("firing", "no_data"):
                self._unhold(tenant, device_id, name)  # over while held: nothing to say
            elif self._suppression(alarm, now) is None:
                self._unhold(tenant, device_id, name)
                self._record(replace(alarm, fired_at=max(now, alarm.fired_at)), now)

    def _unhold(self, tenant: str, device_id: str, name: str) -> None:
        held = self._held.get((tenant, device_id))
        if held is not None and held.pop(name, None) is not None:
            self._mark_held(name, tenant, device_id, False)
            if not held:
                del self._held[(tenant, device_id)]

    def _mark_held(self, name: str, tenant: str, device_id: str, held: bool) -> None:
        key = (name, tenant, device_id)
        state = self.evaluator.states.get(key)
        if state is not None and state.held != held:
            state.held = held
            self.evaluator.dirty.add(key)
