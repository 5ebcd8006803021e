"""Rule evaluation: the per-(rule, device) alarm state machine.

::

    normal ──condition──▶ pending ──held for `for`──▶ firing ──clear──▶ recovering
      ▲                     │                          ▲                  │ │
      └─────not held────────┘                          └───condition──────┘ │ clear for
    resolved ◀──────────────────────────────────────────────────────────────┘ `resolve_after`
    any state ──silent for `no_data`──▶ no_data ──data again──▶ the state before

Conditions are evaluated with numpy over the whole batch; the state machine only walks the
samples when something can change (a device in ``normal`` with nothing active costs one mask).
Every transition is returned as a :class:`Transition`; entering *firing* carries an
:class:`Alarm` with the evidence. States persist through :class:`rules.states.StateStore`, so
a restart or a rule edit continues where it was (no lost or replayed alarms).

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> from rules.model import Rule
>>> from rules.registry import CustomerRegistry
>>> rule = Rule(name="hot", score_at_least=0.8, resolve_after=60, **{"for": 120})
>>> ev = RuleEvaluator((rule,))
>>> scores = np.array([[0.1], [0.9], [0.9], [0.95], [0.2], [0.1]])
>>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(6) * 60.0,
...                     np.ones((6, 1)), scores)
>>> meta = CustomerRegistry().lookup("acme", "hp-1", "heat_pump")
>>> [(t.kind, t.at) for t in ev.evaluate(batch, meta)]
[('fired', 180.0), ('recovering', 240.0), ('resolved', 300.0)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from core.events import DetectorEvent, ScoredBatch
from rules.conditions import Condition, Context, Memory, ScoreTest
from rules.feedback import MAX_LEVEL, Levels, Quieted
from rules.model import Rule
from rules.registry import DeviceMeta, InstalledDevice

__all__ = [
    "ACTIVE",
    "Alarm",
    "AlarmState",
    "AlarmStatus",
    "Key",
    "RuleEvaluator",
    "Transition",
    "TransitionKind",
]

AlarmStatus = Literal["normal", "pending", "firing", "recovering", "resolved", "no_data"]
TransitionKind = Literal["fired", "recovering", "refired", "resolved", "no_data", "data_back",
                         "flapping"]
#: states in which an alarm is "active" (it may inhibit others; its case stays open)
ACTIVE: frozenset[str] = frozenset({"firing", "recovering"})
_EVENT_HISTORY = 64


@dataclass(frozen=True, slots=True)
class Alarm:
    """A rule that started firing for a device, with the evidence behind it."""

    rule: Rule
    tenant: str
    device_id: str
    product: str
    started_at: float
    fired_at: float
    field: str
    peak_score: float
    value: float
    events: tuple[DetectorEvent, ...] = ()
    #: every field anomalous at the firing sample, most anomalous first
    fields: tuple[str, ...] = ()
    #: (t, value) of ``field`` up to the firing sample: the values around onset
    around: tuple[tuple[float, float], ...] = ()
    kind: Literal["condition", "no_data", "offline"] = "condition"
    #: when a trend detector expects the limit to be crossed (epoch seconds)
    predicted_failure_at: float | None = None
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one (rule, device) alarm."""

    kind: TransitionKind
    rule: Rule
    tenant: str
    device_id: str
    product: str
    at: float
    alarm: Alarm | None = None


@dataclass(slots=True)
class AlarmState:
    """Where one (rule, device) pair stands; persisted as one row."""

    status: AlarmStatus = "normal"
    since: float = 0.0
    pending_since: float | None = None
    clear_since: float | None = None
    fired_at: float | None = None
    last_seen: float | None = None
    #: recent firing times (flapping detection)
    fires: list[float] = field(default_factory=list)
    flapping: bool = False
    #: the state to return to when data comes back
    before_no_data: AlarmStatus | None = None
    product: str = ""
    #: fired, but a silence or an inhibition holds its case back (the pipeline sets it)
    held: bool = False
    #: what the rule's ``episodes`` and ``lost`` tests remember of the device, by node
    memory: dict[str, Memory] = field(default_factory=dict)


Key = tuple[str, str, str]


def _or(value: float | None, default: float) -> float:
    """``value`` unless None (a time of 0.0 is a time, not a missing one)."""
    return default if value is None else value


class RuleEvaluator:
    """Evaluates every rule over each scored batch; keeps per-(rule, tenant, device) state."""

    def __init__(self, rules: tuple[Rule, ...],
                 states: dict[Key, AlarmState] | None = None) -> None:
        self.rules = rules
        self.by_name = {r.name: r for r in rules}
        self.states: dict[Key, AlarmState] = states if states is not None else {}
        #: keys whose state changed since the last :meth:`take_dirty`
        self.dirty: set[Key] = set()
        self._conditions = {r.name: r.condition for r in rules}
        # detector events older than this matter to no condition and to no alarm's evidence
        self._event_horizon = max(
            [3600.0 + r.for_s for r in rules]
            + [c.event_window() for r in rules for c in (r.condition, r.clear) if c is not None],
            default=3600.0)
        self._events: dict[tuple[str, str], deque[DetectorEvent]] = {}
        #: devices that said goodbye on purpose (tenant, device) → when: no no-data alarms
        self.resting: dict[tuple[str, str], float] = {}
        #: devices back after a goodbye → since when: silence counts from then
        self.awake_since: dict[tuple[str, str], float] = {}
        #: devices whose last will came (connection lost) → (since, product)
        self.offline_since: dict[tuple[str, str], tuple[float, str]] = {}
        #: the durable record of goodbyes (the devices table), asked about the devices a tick
        #: is about to find silent: of those, who said goodbye and when. A goodbye handled by
        #: another process (a partition's previous owner) counts even if this one never saw it
        self.goodbyes: Callable[[Iterable[tuple[str, str]]], dict[tuple[str, str], float]] \
            | None = None
        #: alarm levels raised by false alarms (``rules.feedback``); the pipeline refreshes them
        self.levels = Levels()
        self._raised: dict[tuple[str, float], Condition] = {}
        #: what quiet windows and raised levels held back that would have fired (the pipeline
        #: takes them: the adjustments that keep holding something back live on,
        #: ``rules.feedback.renew_windows``)
        self.quieted: list[Quieted] = []
        #: ("window" | "raise", alarm) whose condition a window or raise holds back now →
        #: since when, and whether that run was noted already
        self._quiet_runs: dict[tuple[str, Key], tuple[float, bool]] = {}

    def take_dirty(self) -> dict[Key, AlarmState]:
        """States changed since the last call (the pipeline persists them once per batch)."""
        out = {k: self.states[k] for k in self.dirty if k in self.states}
        self.dirty.clear()
        return out

    def status(self, rule: str, tenant: str, device_id: str) -> AlarmStatus:
        """Current status of one alarm (``normal`` when never seen)."""
        state = self.states.get((rule, tenant, device_id))
        return state.status if state is not None else "normal"

    def active(self, rules: Iterable[str], tenant: str, device_id: str,
               no_data_counts: bool = True) -> bool:
        """Whether any of ``rules`` is firing/recovering (or silent) for the device."""
        for name in rules:
            status = self.status(name, tenant, device_id)
            if status in ACTIVE or (no_data_counts and status == "no_data"):
                return True
        return False

    def evaluate(self, batch: ScoredBatch, meta: DeviceMeta) -> list[Transition]:
        """Transitions caused by this batch, in time order per rule."""
        history = self._events.get((batch.tenant, batch.device_id))
        if batch.events:
            if history is None:
                history = self._events[(batch.tenant, batch.device_id)] = deque(
                    maxlen=_EVENT_HISTORY)
            history.extend(batch.events)
        if batch.n_samples == 0:
            # events only (a peer bucket judged between batches on the scale-out engine):
            # nothing to evaluate, the events are kept for the device's next batch
            return []
        if history:
            horizon = float(batch.t[0]) - self._event_horizon
            while history and history[0].ts < horizon:
                history.popleft()
        base = Context.of(batch, meta, None, tuple(history) if history else ())
        out: list[Transition] = []
        for rule in self.rules:
            if rule.product is not None and rule.product != batch.product:
                continue
            cols = base.columns(rule.fields)
            if rule.fields is not None and not cols:
                continue
            key = (rule.name, batch.tenant, batch.device_id)
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = AlarmState(since=float(batch.t[0]),
                                                      product=batch.product)
                self.dirty.add(key)
            self._step(rule, key, state,
                       replace(base, rule_fields=rule.fields, memory=state.memory), cols, out)
            if any(m.dirty for m in state.memory.values()):
                for m in state.memory.values():
                    m.dirty = False
                self.dirty.add(key)
        return out

    def add_events(self, tenant: str, device_id: str, events: Iterable[DetectorEvent]) -> None:
        """Events that arrived without a batch (the agent's own): ``event`` tests see them
        from the device's next batch on."""
        history = self._events.setdefault((tenant, device_id), deque(maxlen=_EVENT_HISTORY))
        history.extend(events)

    def device_state(self, tenant: str, device_id: str, state: Literal["online", "offline"],
                     reason: str | None, at: float, product: str = "") -> list[Transition]:
        """The device's agent said it is online, or offline (``reason``: ``"shutdown"`` on
        purpose, ``"connection_lost"`` by its last will). A goodbye stops no-data alarms until
        the device is back; an offline rule resolves when the device is online again."""
        device = (tenant, device_id)
        out: list[Transition] = []
        if state == "online":
            if self.resting.pop(device, None) is not None:
                self.awake_since[device] = at
            if self.offline_since.pop(device, None) is not None:
                for rule in self.rules:
                    key = (rule.name, tenant, device_id)
                    alarm_state = self.states.get(key)
                    if rule.is_offline_rule and alarm_state is not None \
                            and alarm_state.status == "firing":
                        alarm_state.status, alarm_state.since = "resolved", at
                        self._emit(out, "resolved", rule, key, alarm_state, at)
        elif reason == "shutdown":
            self.resting[device] = at
            self.offline_since.pop(device, None)
            self.awake_since.pop(device, None)
        else:
            self.offline_since.setdefault(device, (at, product))
        return out

    def _offline_tick(self, now: float, out: list[Transition],
                      device_clock: Callable[[str, str], float | None] | None) -> None:
        for (tenant, device_id), (since, product) in self.offline_since.items():
            # judged against how far its own messages were read: a "back online" may still
            # wait in a lagging partition
            until = now if device_clock is None else device_clock(tenant, device_id)
            if until is None:
                continue
            for rule in self.rules:
                if rule.offline is None or not rule.is_offline_rule or (
                        rule.product is not None and product and rule.product != product):
                    continue
                key = (rule.name, tenant, device_id)
                state = self.states.get(key)
                if state is not None and state.status == "firing":
                    continue
                if until - since < rule.offline:
                    continue
                if state is None:
                    state = self.states[key] = AlarmState(since=since, product=product)
                at = since + rule.offline
                state.status, state.since, state.fired_at = "firing", at, at
                alarm = Alarm(rule, tenant, device_id, product or state.product, since, at, "",
                              0.0, 0.0, kind="offline")
                self._emit(out, "fired", rule, key, state, at, alarm)

    def tick(self, now: float, registry_devices: dict[str, float | None] | None = None,
             tenant: str = "", installed: Sequence[InstalledDevice] = (),
             device_clock: Callable[[str, str], float | None] | None = None,
             ) -> list[Transition]:
        """No-data transitions due at ``now`` (call it periodically; batches never arrive
        from a silent device). ``registry_devices`` (device → installed_at, of ``tenant``) and
        ``installed`` (the registry's devices, each with its tenant and product: only its
        product's rules apply) add devices that never reported at all. A device that said
        goodbye is not silent; one offline by its last will fires the offline rules due.

        ``device_clock(tenant, device_id)``, when given, is how far a device's own telemetry
        has been read (the NATS engine: its partition's caught-up time; None: not known yet,
        no verdict): a device is judged silent against it rather than against ``now``, so a
        partition that lags holds back only its own devices."""
        out: list[Transition] = []
        self._offline_tick(now, out, device_clock)
        silent: list[tuple[Rule, Key, AlarmState, float]] = []
        for key, state in self.states.items():
            rule = self.by_name.get(key[0])
            if rule is None or rule.no_data is None or state.status == "no_data":
                continue
            owner = (key[1], key[2])
            if owner in self.resting:
                continue  # said goodbye on purpose: its silence is expected
            seen = state.last_seen if state.last_seen is not None else state.since
            seen = max(seen, self.awake_since.get(owner, seen))
            until = now if device_clock is None else device_clock(key[1], key[2])
            if until is not None and until - seen >= rule.no_data:
                silent.append((rule, key, state, seen + rule.no_data))
        if silent and self.goodbyes is not None:
            # one look for the tick (rare: only devices due now), not one per device
            for said, at in self.goodbyes({(k[1], k[2]) for _, k, _, _ in silent}).items():
                self.resting[said] = at
                self.awake_since.pop(said, None)
        for rule, key, state, at in silent:
            if (key[1], key[2]) not in self.resting:
                self._enter_no_data(rule, key, state, at, out)
        for device_id, installed_at in (registry_devices or {}).items():
            if installed_at is None or (tenant, device_id) in self.resting:
                continue
            for rule in self.rules:
                key = (rule.name, tenant, device_id)
                if (rule.no_data is None or key in self.states
                        or now - installed_at < rule.no_data):
                    continue
                state = self.states[key] = AlarmState(since=installed_at)
                self._enter_no_data(rule, key, state, installed_at + rule.no_data, out)
        for device in installed:
            if device.installed_at is None or (
                    device.tenant if device.tenant is not None else tenant,
                    device.device_id) in self.resting:
                continue
            for rule in self.rules:
                key = (rule.name, device.tenant if device.tenant is not None else tenant,
                       device.device_id)
                if (rule.no_data is None or key in self.states
                        or now - device.installed_at < rule.no_data
                        or (rule.product is not None and rule.product != device.product)):
                    continue
                state = self.states[key] = AlarmState(since=device.installed_at,
                                                      product=device.product or "")
                self._enter_no_data(rule, key, state, device.installed_at + rule.no_data, out)
        return out

    # -- the state machine -------------------------------------------------------------------

    def _emit(self, out: list[Transition], kind: TransitionKind, rule: Rule, key: Key,
              state: AlarmState, at: float, alarm: Alarm | None = None) -> None:
        self.dirty.add(key)
        out.append(Transition(kind, rule, key[1], key[2], state.product, at, alarm))

    def _enter_no_data(self, rule: Rule, key: Key, state: AlarmState, at: float,
                       out: list[Transition], late: bool = False) -> None:
        state.before_no_data = state.status
        state.status = "no_data"
        state.since = at
        alarm = None
        # a gap noticed only when data is back (``late``) is history: it goes in the states,
        # but opens no "device silent" case for a device that is talking again
        if rule.is_no_data_rule and not late:
            alarm = Alarm(rule, key[1], key[2], state.product, at, at, "", 0.0, 0.0,
                          kind="no_data")
            state.fired_at = at
        self._emit(out, "no_data", rule, key, state, at, alarm)

    def _step(self, rule: Rule, key: Key, state: AlarmState, ctx: Context, cols: list[int],
              out: list[Transition]) -> None:
        t = ctx.batch.t
        first = float(t[0])
        if (rule.no_data is not None and state.last_seen is not None
                and state.status != "no_data" and first - state.last_seen >= rule.no_data):
            self._enter_no_data(rule, key, state, state.last_seen + rule.no_data, out,
                                late=True)
        if state.status == "no_data":
            back = state.before_no_data or "normal"
            if rule.is_no_data_rule or back == "pending":
                back = "resolved" if rule.is_no_data_rule else "normal"
            state.status = back
            state.since = first
            state.pending_since = None
            self._emit(out, "resolved" if rule.is_no_data_rule else "data_back", rule, key,
                       state, first)
        # a late batch (out of order) must not move the last sample seen back in time
        last = float(t[-1])
        state.last_seen = last if state.last_seen is None else max(state.last_seen, last)
        condition = base = self._conditions[rule.name]
        if condition is None or base is None:
            return
        if rule.score_at_least is not None and (self.levels.device or self.levels.product):
            condition = self._raised_condition(rule, key, state, condition)
        active = condition.mask(ctx)
        # what the rule's own level fires on (a raise and a window may both hold it back)
        own = base.mask(ctx) if condition is not base else active
        quiet = None
        if self.levels.windows:
            # a weekly pattern false alarms taught the rules is normal on this device
            quiet = self.levels.quiet(rule.name, key[1], key[2], t)
            if quiet is not None:
                held = own & quiet
                if ("window", key) in self._quiet_runs or held.any():
                    self._note_quieted(rule, key, t, held, "window")
                active = active & ~quiet
        if condition is not base and self.levels.device.get(key) is not None:
            # what the device's raised level holds back (that the rule's own level would not)
            lifted = own & ~active
            if quiet is not None:
                lifted &= ~quiet
            if ("raise", key) in self._quiet_runs or lifted.any():
                self._note_quieted(rule, key, t, lifted, "raise")
        if state.status in ("normal", "resolved") and not active.any():
            return  # the common case: nothing to walk
        clear = rule.clear.mask(ctx) & ~active if rule.clear is not None else ~active
        act, clr = active.tolist(), clear.tolist()
        for i in range(ctx.batch.n_samples):
            ts = float(t[i])
            status = state.status
            if status in ("normal", "resolved"):
                if not act[i]:
                    continue
                state.status, state.pending_since = "pending", ts
                self.dirty.add(key)
                status = "pending"
            if status == "pending":
                if not act[i]:
                    state.status, state.pending_since = "normal", None
                    self.dirty.add(key)
                elif ts - _or(state.pending_since, ts) >= rule.for_s:
                    self._fire(rule, key, state, ctx, cols, i, out)
            elif status == "firing":
                if clr[i]:
                    state.status, state.clear_since = "recovering", ts
                    self._emit(out, "recovering", rule, key, state, ts)
                    self._maybe_resolve(rule, key, state, ts, out)
            elif status == "recovering":
                if act[i]:
                    state.status, state.clear_since = "firing", None
                    self._note_fire(rule, key, state, ts, out)
                    self._emit(out, "refired", rule, key, state, ts)
                elif not clr[i]:  # between clear and firing (hysteresis): not recovered yet
                    state.status, state.clear_since = "firing", None
                    self.dirty.add(key)
                else:
                    self._maybe_resolve(rule, key, state, ts, out)

    def _note_quieted(self, rule: Rule, key: Key, t: NDArray[np.float64],
                      held: NDArray[np.bool_], by: Literal["window", "raise"]) -> None:
        """Follow the runs of samples a quiet window (or a raised level) held back, across
        batches: one that lasts the rule's ``for`` is what would have fired, noted once per
        run."""
        since, noted = self._quiet_runs.pop((by, key), (math.nan, False))
        for ts, hold in zip(t.tolist(), held.tolist(), strict=True):
            if not hold:
                since, noted = math.nan, False
                continue
            if math.isnan(since):
                since = ts
            if not noted and ts - since >= rule.for_s:
                self.quieted.append(Quieted(rule.name, key[1], key[2], since, by))
                noted = True
        if not math.isnan(since):
            self._quiet_runs[(by, key)] = (since, noted)

    def _raised_condition(self, rule: Rule, key: Key, state: AlarmState,
                          condition: Condition) -> Condition:
        """The rule's condition at the level false alarms raised it to for this device."""
        extra = self.levels.raise_for(rule.name, key[1], key[2], state.product)
        if extra <= 0.0 or rule.score_at_least is None:
            return condition
        level = round(min(rule.score_at_least + extra, MAX_LEVEL), 6)
        raised = self._raised.get((rule.name, level))
        if raised is None:
            raised = self._raised[(rule.name, level)] = Condition(score=ScoreTest(at_least=level))
        return raised

    def _note_fire(self, rule: Rule, key: Key, state: AlarmState, ts: float,
                   out: list[Transition]) -> None:
        state.fires.append(ts)
        if rule.flapping is None:
            del state.fires[:-1]
            return
        cutoff = ts - rule.flapping.within
        state.fires = [f for f in state.fires if f >= cutoff][-rule.flapping.fires:]
        if not state.flapping and len(state.fires) >= rule.flapping.fires:
            state.flapping = True
            self._emit(out, "flapping", rule, key, state, ts)

    def _maybe_resolve(self, rule: Rule, key: Key, state: AlarmState, ts: float,
                       out: list[Transition]) -> None:
        if ts - _or(state.clear_since, ts) < rule.resolve_after:
            return
        if state.flapping and rule.flapping is not None:
            if state.fires and ts - state.fires[-1] < rule.flapping.within:
                return  # a flapping alarm holds its case until it has been quiet a while
            state.flapping = False
        state.status, state.since, state.clear_since = "resolved", ts, None
        self._emit(out, "resolved", rule, key, state, ts)

    def _fire(self, rule: Rule, key: Key, state: AlarmState, ctx: Context, cols: list[int],
              i: int, out: list[Transition]) -> None:
        batch = ctx.batch
        ts = float(batch.t[i])
        started = state.pending_since if state.pending_since is not None else ts
        state.status, state.since, state.fired_at = "firing", ts, ts
        self._note_fire(rule, key, state, ts, out)
        row = ctx.scores[i, cols] if cols else np.zeros(0)
        if row.size:
            order = np.argsort(-row, kind="stable")
            j = int(order[0])
            field_name = batch.fields[cols[j]]
            anomalous = tuple(batch.fields[cols[int(k)]] for k in order
                              if row[int(k)] >= 0.5 or int(k) == j)
            peak = float(row[j])
            col = batch.values[:, cols[j]]
            lo = max(0, i - 9)
            around = tuple((float(batch.t[k]), float(col[k])) for k in range(lo, i + 1)
                           if not math.isnan(float(col[k])))
            value = float(col[i])
        else:
            field_name, anomalous, peak, around, value = "", (), 0.0, (), 0.0
        evidence = tuple(e for e in ctx.events
                         if (rule.fields is None or e.field in rule.fields) and e.ts <= ts)[-20:]
        forecasts = [e.ts + e.time_to_limit_s for e in evidence
                     if e.time_to_limit_s is not None]
        alarm = Alarm(
            rule=rule, tenant=key[1], device_id=key[2], product=batch.product,
            started_at=started, fired_at=ts, field=field_name, peak_score=peak,
            value=value if not math.isnan(value) else 0.0, events=evidence, fields=anomalous,
            around=around, predicted_failure_at=min(forecasts) if forecasts else None,
            flapping=state.flapping,
        )
        self._emit(out, "fired", rule, key, state, ts, alarm)
