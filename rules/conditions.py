"""The condition tree of a rule: ``all``/``any``/``not`` over six kinds of test, never ``eval``.

Each node turns one scored batch into a boolean per sample, with numpy over the whole batch:

- ``score``: anomaly score of the rule's fields at least ``at_least`` (on ``count`` fields at once)
- ``value``: raw telemetry ``above``/``below`` a limit (or the difference of two fields,
  ``minus``: the spread of a pack's cell voltages)
- ``event``: a detector event (``detector`` kind, ``field``, ``score_at_least``, a predicted
  ``time_to_limit_below``) happened ``within`` the last while
- ``device``: device metadata (``product``, ``firmware``, ``tier``, ``timezone``, ``customer``;
  shell-style patterns such as ``"2.*"``)
- ``time``: local ``hours`` and ``weekdays`` in the device's time zone (or ``zone: utc``)
- ``episodes``: at least ``at_least`` separate runs (each ``min_length`` long) of an inner
  condition started ``within`` the last while: an intermittent fault that comes and goes
- ``lost``: a burst of lost samples (``at_least`` within ``within``) that the device's own
  usual loss rate makes ``unusual``: a connection cutting out, not a device that always drops
  a few

``episodes`` and ``lost`` remember what they need across batches, per rule and device
(:class:`EpisodeState`, :class:`LossState`).

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> from rules.registry import DeviceMeta
>>> cond = Condition.model_validate({"all": [
...     {"score": {"at_least": 0.8}},
...     {"value": {"field": "discharge_temp", "above": 80}},
...     {"not": {"device": {"firmware": ["1.*"]}}}]})
>>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("discharge_temp",), np.arange(3.0),
...                     np.array([[70.0], [85.0], [90.0]]), np.array([[0.9], [0.9], [0.1]]))
>>> meta = DeviceMeta("acme", "hp-1", "heat_pump", "acme", firmware="2.0.3")
>>> cond.mask(Context.of(batch, meta, None, ())).tolist()
[False, True, False]
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.events import DetectorEvent, ScoredBatch
from rules.registry import DeviceMeta
from rules.timeparse import WEEKDAYS, DailyHours, Duration, local_clock, zone

__all__ = [
    "Condition",
    "Context",
    "DeviceTest",
    "EpisodeState",
    "EpisodesTest",
    "EventTest",
    "LossState",
    "LostTest",
    "Memory",
    "ScoreTest",
    "TimeTest",
    "ValueTest",
    "memory_from_json",
]

Mask = NDArray[np.bool_]
_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True, slots=True)
class Context:
    """What a condition sees: one batch, its device's metadata and recent detector events."""

    batch: ScoredBatch
    meta: DeviceMeta
    #: the rule's fields (None: all fields of the device)
    rule_fields: tuple[str, ...] | None
    #: detector events of this device, recent ones from earlier batches included
    events: Sequence[DetectorEvent]
    scores: NDArray[np.float64]
    #: per-(rule, device) memory of the ``episodes`` and ``lost`` tests, by node (None:
    #: nothing is kept between batches, each batch stands alone)
    memory: dict[str, Memory] | None = None

    @classmethod
    def of(cls, batch: ScoredBatch, meta: DeviceMeta, rule_fields: tuple[str, ...] | None,
           events: Sequence[DetectorEvent]) -> Context:
        """A context with NaN scores read as 0 (no opinion is not an anomaly)."""
        return cls(batch, meta, rule_fields, events, np.nan_to_num(batch.scores, nan=0.0))

    def columns(self, fields: Sequence[str] | None) -> list[int]:
        """Column indexes of ``fields`` (or of the rule's fields) present in the batch."""
        wanted = fields if fields is not None else self.rule_fields
        return [i for i, f in enumerate(self.batch.fields) if wanted is None or f in wanted]

    def none(self) -> Mask:
        """All-false mask of this batch's length."""
        return np.zeros(self.batch.n_samples, dtype=np.bool_)


class ScoreTest(BaseModel):
    """Anomaly score of at least ``at_least`` on ``count`` of the fields at the same sample."""

    model_config = _STRICT

    at_least: float = Field(gt=0.0, le=1.0)
    fields: tuple[str, ...] | None = None
    count: int = Field(default=1, ge=1)

    def mask(self, ctx: Context) -> Mask:
        """Per sample."""
        cols = ctx.columns(self.fields)
        if not cols:
            return ctx.none()
        high = ctx.scores[:, cols] >= self.at_least
        out: Mask = high.sum(axis=1) >= self.count
        return out


class ValueTest(BaseModel):
    """A raw value above and/or below a limit (a missing or NaN value is never true).

    With ``minus``, the value tested is ``field`` minus that other field at the same sample:
    a spread (highest minus lowest cell voltage) says more than either reading alone.

    >>> from core.events import ScoredBatch
    >>> from rules.registry import DeviceMeta
    >>> cells = np.array([[3.30, 3.31], [3.28, 3.35], [np.nan, 3.35]])
    >>> batch = ScoredBatch("acme", "bat-1", "home_battery", ("cell_v_min", "cell_v_max"),
    ...                     np.arange(3.0), cells, np.zeros((3, 2)))
    >>> test = ValueTest(field="cell_v_max", minus="cell_v_min", above=0.04)
    >>> ctx = Context.of(batch, DeviceMeta("acme", "bat-1", "home_battery", "acme"), None, ())
    >>> test.mask(ctx).tolist()
    [False, True, False]
    """

    model_config = _STRICT

    field: str
    minus: str | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _a_limit(self) -> ValueTest:
        if self.above is None and self.below is None:
            raise ValueError("a value test needs 'above', 'below' or both")
        return self

    def mask(self, ctx: Context) -> Mask:
        """Per sample."""
        fields = ctx.batch.fields
        if self.field not in fields or (self.minus is not None and self.minus not in fields):
            return ctx.none()
        col = ctx.batch.values[:, fields.index(self.field)]
        if self.minus is not None:
            col = col - ctx.batch.values[:, fields.index(self.minus)]
        out = ~np.isnan(col)
        if self.above is not None and self.below is not None and self.above > self.below:
            # a band outside [below, above]: "above 80 or below 10" reads naturally this way
            return out & ((col > self.above) | (col < self.below))
        if self.above is not None:
            out &= col > self.above
        if self.below is not None:
            out &= col < self.below
        return out


class EventTest(BaseModel):
    """A detector event matching every given filter happened within ``within`` before a sample."""

    model_config = _STRICT

    detector: tuple[str, ...] | None = None
    field: tuple[str, ...] | None = None
    score_at_least: float = Field(default=0.0, ge=0.0, le=1.0)
    time_to_limit_below: Duration | None = None
    within: Duration = 3600.0

    @field_validator("detector", "field", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def matches(self, event: DetectorEvent, rule_fields: tuple[str, ...] | None) -> bool:
        """Whether one event passes the filters."""
        fields = self.field if self.field is not None else rule_fields
        if fields is not None and event.field not in fields:
            return False
        if self.detector is not None and event.detector not in self.detector:
            return False
        if event.score < self.score_at_least:
            return False
        return not (self.time_to_limit_below is not None and (
            event.time_to_limit_s is None or event.time_to_limit_s >= self.time_to_limit_below))

    def mask(self, ctx: Context) -> Mask:
        """Per sample."""
        starts = np.sort(np.array([e.ts for e in ctx.events
                                   if self.matches(e, ctx.rule_fields)], dtype=np.float64))
        if starts.size == 0:
            return ctx.none()
        t = ctx.batch.t
        # a sample is covered when some matching event lies in [t - within, t]
        first = np.searchsorted(starts, t - self.within, side="left")
        past_last = np.searchsorted(starts, t, side="right")
        out: Mask = past_last > first
        return out


class DeviceTest(BaseModel):
    """Device metadata: every given key must match one of its patterns (``fnmatch`` style)."""

    model_config = _STRICT

    product: tuple[str, ...] | None = None
    firmware: tuple[str, ...] | None = None
    tier: tuple[str, ...] | None = None
    timezone: tuple[str, ...] | None = None
    customer: tuple[str, ...] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    def holds(self, meta: DeviceMeta) -> bool:
        """For the device as a whole."""
        checks = ((self.product, meta.product), (self.firmware, meta.firmware),
                  (self.tier, meta.tier), (self.timezone, meta.timezone),
                  (self.customer, meta.customer_id))
        return all(patterns is None or any(fnmatch.fnmatchcase(actual, p) for p in patterns)
                   for patterns, actual in checks)

    def mask(self, ctx: Context) -> Mask:
        """Per sample (the same answer for the whole batch)."""
        return np.full(ctx.batch.n_samples, self.holds(ctx.meta), dtype=np.bool_)


class TimeTest(BaseModel):
    """Local time of day and weekday, in the device's time zone unless ``zone: utc``."""

    model_config = _STRICT

    hours: str | None = None
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] | None = None
    zone: Literal["device", "utc"] = "device"

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            DailyHours.parse(value)
        return value

    def mask(self, ctx: Context) -> Mask:
        """Per sample."""
        tz = ctx.meta.timezone if self.zone == "device" else "UTC"
        zone(tz)
        minutes, weekday = local_clock(ctx.batch.t, tz)
        out = np.ones(ctx.batch.n_samples, dtype=np.bool_)
        if self.hours is not None:
            out &= DailyHours.parse(self.hours).mask(minutes)
        if self.weekdays is not None:
            out &= np.isin(weekday, [WEEKDAYS.index(d) for d in self.weekdays])
        return out


@dataclass(slots=True)
class EpisodeState:
    """What an ``episodes`` test remembers of one device between batches."""

    #: start times of the counted episodes that may still fall in the window (oldest first)
    starts: list[float] = field(default_factory=list)
    #: when each of them had lasted ``min_length`` (the moment it began to count)
    counted_at: list[float] = field(default_factory=list)
    #: the episode that may still go on: its start, its last true sample, whether it counted
    run_start: float | None = None
    run_last: float | None = None
    run_counted: bool = False
    #: whether the inner test held at the last sample (the next batch may continue the run)
    held_last: bool = False
    #: the last sample taken in; older samples (a batch seen again) change nothing
    through: float | None = None
    #: changed since the evaluator last persisted it
    dirty: bool = False

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (the alarm state store keeps it)."""
        return {"starts": list(self.starts), "counted_at": list(self.counted_at),
                "run_start": self.run_start, "run_last": self.run_last,
                "run_counted": self.run_counted, "held_last": self.held_last,
                "through": self.through}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeState:
        """The inverse of :meth:`to_json`."""
        return cls([float(x) for x in data["starts"]], [float(x) for x in data["counted_at"]],
                   data["run_start"], data["run_last"], bool(data["run_counted"]),
                   bool(data["held_last"]), data["through"])


class EpisodesTest(BaseModel):
    """At least ``at_least`` separate episodes of ``of`` started within ``within`` (and had
    each lasted ``min_length`` by the sample): a fault that comes and goes.

    An episode is a run of samples where ``of`` holds; false stretches of at most ``max_gap``
    between two true samples (lost or odd samples inside one episode) do not end it. It counts
    from the first true sample at which it has lasted ``min_length``. Episodes continue across
    batches through :class:`EpisodeState`.

    >>> test = EpisodesTest.model_validate({"of": {"score": {"at_least": 0.8}},
    ...                                     "at_least": 2, "within": "1h", "min_length": 60})
    >>> from core.events import ScoredBatch
    >>> from rules.registry import DeviceMeta
    >>> level = np.array([[0.9], [0.9], [0.1], [0.9], [0.1], [0.9], [0.9], [0.1]])
    >>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(8) * 60.0,
    ...                     np.ones((8, 1)), level)
    >>> ctx = Context.of(batch, DeviceMeta("acme", "hp-1", "heat_pump", "acme"), None, ())
    >>> test.mask(ctx).astype(int).tolist()   # the one-sample run at 3 min is too short
    [0, 0, 0, 0, 0, 0, 1, 1]
    """

    model_config = _STRICT

    of: Condition
    at_least: int = Field(ge=1)
    within: Duration
    min_length: Duration = 0.0
    max_gap: Duration = 0.0

    def key(self) -> str:
        """The node's identity in the per-device memory (an edited test starts afresh)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def mask(self, ctx: Context) -> Mask:
        """Per sample; advances the device's memory with the samples it has not seen."""
        inner = self.of.mask(ctx)
        t = ctx.batch.t
        memory = ctx.memory if ctx.memory is not None else {}
        key = self.key()
        state = memory.get(key)
        if not isinstance(state, EpisodeState):
            state = EpisodeState()
            memory[key] = state
        fresh = t > state.through if state.through is not None else np.ones(t.size, np.bool_)
        if fresh.any():
            self._advance(state, t[fresh], inner[fresh])
        starts = np.asarray(state.starts, dtype=np.float64)
        counted_at = np.asarray(state.counted_at, dtype=np.float64)
        # episodes are disjoint and in order: those started in the window form a suffix,
        # those already counted a prefix; the sample sees their overlap
        begun = np.searchsorted(starts, t - self.within, side="left")
        counted = np.searchsorted(counted_at, t, side="right")
        out: Mask = (counted - begun) >= self.at_least
        return out

    def _advance(self, state: EpisodeState, t: NDArray[np.float64], held: Mask) -> None:
        """Take in samples newer than any seen: new episodes, the one going on, the window."""
        before = state.to_json()
        at = np.flatnonzero(held)
        true_t = t[at]
        if true_t.size:
            # a new episode begins at a true sample after a false stretch longer than max_gap
            breaks = (np.diff(true_t) > self.max_gap) & (np.diff(at) > 1)
            begin = np.flatnonzero(np.concatenate(([True], breaks)))
            end = np.append(begin[1:] - 1, true_t.size - 1)
            start = true_t[begin]
            already = np.zeros(begin.size, dtype=np.bool_)
            if state.run_start is not None and state.run_last is not None and (
                    (state.held_last and at[0] == 0)
                    or true_t[0] - state.run_last <= self.max_gap):
                start[0] = state.run_start  # the episode of the last batch goes on
                already[0] = state.run_counted
            first_long = np.maximum(
                np.searchsorted(true_t, start + self.min_length, side="left"), begin)
            long_enough = first_long <= end
            new = long_enough & ~already
            if new.any():
                state.starts.extend(start[new].tolist())
                state.counted_at.extend(true_t[first_long[new]].tolist())
            state.run_start, state.run_last = float(start[-1]), float(true_t[-1])
            state.run_counted = bool(long_enough[-1] or already[-1])
        if (state.run_last is not None and not held[-1]
                and float(t[-1]) - state.run_last > self.max_gap):
            state.run_start, state.run_last, state.run_counted = None, None, False
        state.held_last = bool(held[-1])
        horizon = float(t[0]) - self.within
        keep = next((i for i, s in enumerate(state.starts) if s >= horizon), len(state.starts))
        del state.starts[:keep], state.counted_at[:keep]
        # a quiet device's memory changes only in ``through``: not worth a write per batch
        state.dirty = state.dirty or state.to_json() != before
        state.through = float(t[-1])


@dataclass(slots=True)
class LossState:
    """What a ``lost`` test remembers of one device: its usual loss rate and recent losses."""

    #: samples and lost samples seen, both forgotten with the test's ``usual_half_life``
    samples: float = 0.0
    lost: float = 0.0
    #: times of the lost samples that may still fall in the window (oldest first)
    recent: list[float] = field(default_factory=list)
    #: the last sample taken in; older samples (a batch seen again) change nothing
    through: float | None = None
    #: changed since the evaluator last persisted it
    dirty: bool = False

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (the alarm state store keeps it)."""
        return {"kind": "lost", "samples": self.samples, "lost": self.lost,
                "recent": list(self.recent), "through": self.through}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LossState:
        """The inverse of :meth:`to_json`."""
        return cls(float(data["samples"]), float(data["lost"]),
                   [float(x) for x in data["recent"]], data["through"])


#: what a stateful test keeps per (rule, device) and node
Memory = EpisodeState | LossState


def memory_from_json(data: dict[str, Any]) -> Memory:
    """A stored memory node back (:meth:`EpisodeState.to_json` or :meth:`LossState.to_json`)."""
    if data.get("kind") == "lost":
        return LossState.from_json(data)
    return EpisodeState.from_json(data)


def _poisson_tail_at(mean: NDArray[np.float64], unusual: float) -> NDArray[np.int64]:
    """Per mean: the smallest count k with P(X >= k) <= ``unusual`` for X ~ Poisson(mean)."""
    term = np.exp(-mean)
    below = np.zeros(mean.shape)  # P(X < k)
    out = np.zeros(mean.shape, dtype=np.int64)
    found = np.zeros(mean.shape, dtype=np.bool_)
    k = 0
    while not found.all() and k < 10_000:
        newly = ~found & (1.0 - below <= unusual)
        out[newly] = k
        found |= newly
        below += term
        k += 1
        term *= mean / k
    return out


class LostTest(BaseModel):
    """A burst of lost samples: at least ``at_least`` within ``within``, and so many that the
    device's own usual loss rate makes the burst ``unusual`` (Poisson).

    A lost sample is a row whose every value is missing. Devices lose samples at their own
    rate (a weak radio, a busy gateway): for a device that usually loses one in twenty, three
    in ten minutes is an ordinary day, for one that loses one in a thousand it is a connection
    cutting out. The usual rate is learned per device, forgotten with ``usual_half_life``;
    a new device starts as if it had lost ``prior_rate`` of ``prior_samples`` samples, a
    belief forgotten like any other (until it knows a device, the test assumes a lossy one).

    >>> test = LostTest.model_validate({"within": "5m", "at_least": 2})
    >>> from core.events import ScoredBatch
    >>> from rules.registry import DeviceMeta
    >>> x = np.ones((8, 1)); x[[2, 3, 4]] = np.nan
    >>> batch = ScoredBatch("acme", "bat-1", "home_battery", ("a",), np.arange(8) * 60.0,
    ...                     x, np.zeros((8, 1)))
    >>> ctx = Context.of(batch, DeviceMeta("acme", "bat-1", "home_battery", "acme"), None, ())
    >>> test.mask(ctx).astype(int).tolist()   # a new device: three in five minutes
    [0, 0, 0, 0, 1, 1, 1, 1]
    """

    model_config = _STRICT

    within: Duration = 600.0
    at_least: int = Field(default=2, ge=1)
    unusual: float = Field(default=1e-3, gt=0.0, lt=1.0)
    usual_half_life: Duration = 86_400.0
    prior_rate: float = Field(default=0.01, ge=0.0, lt=1.0)
    prior_samples: float = Field(default=720.0, ge=1.0)

    def key(self) -> str:
        """The node's identity in the per-device memory (an edited test starts afresh)."""
        return "lost:" + self.model_dump_json(exclude_none=True)

    def mask(self, ctx: Context) -> Mask:
        """Per sample; advances the device's memory with the samples it has not seen."""
        t = ctx.batch.t
        n = t.size
        if n == 0:
            return ctx.none()
        lost = np.isnan(ctx.batch.values).all(axis=1)
        memory = ctx.memory if ctx.memory is not None else {}
        key = self.key()
        state = memory.get(key)
        if not isinstance(state, LossState):
            state = LossState(self.prior_samples, self.prior_rate * self.prior_samples)
            memory[key] = state
        fresh = t > state.through if state.through is not None else np.ones(n, np.bool_)
        step = float(np.median(np.diff(t))) if n > 1 else 60.0
        # the usual rate at each sample, from the samples before it (a burst must not excuse
        # itself), forgotten sample by sample: the same whatever the batches' lengths
        decay = 0.5 ** (max(step, 1e-9) / self.usual_half_life)
        before = np.cumsum(fresh) - fresh  # fresh samples before each sample
        fade = decay ** before.astype(np.float64)
        grow = decay ** -(before + 1.0)
        taken = np.where(fresh & lost, grow, 0.0)
        lost_before = fade * (state.lost + np.cumsum(taken) - taken)
        seen_before = fade * state.samples + (1.0 - fade) / (1.0 - decay)
        rate = lost_before / np.maximum(seen_before, 1.0)
        # samples in the window, both ends included
        per_window = self.within / max(step, 1e-9) + 1.0
        need = np.maximum(self.at_least, _poisson_tail_at(rate * per_window, self.unusual))
        times = np.concatenate((np.asarray(state.recent, dtype=np.float64), t[fresh & lost]))
        times.sort()
        # lost samples in [t - within, t] at every sample
        count = (np.searchsorted(times, t, side="right")
                 - np.searchsorted(times, t - self.within, side="left"))
        out: Mask = count >= need
        if fresh.any():
            recent_before = state.recent
            new = int(fresh.sum())
            end = decay ** float(new)
            state.lost = end * (state.lost + float(taken.sum()))
            state.samples = end * state.samples + (1.0 - end) / (1.0 - decay)
            last = float(t[fresh][-1])
            state.recent = times[times >= last - self.within].tolist()
            # the counts move with every batch; a write is worth it when a loss came or went
            state.dirty = state.dirty or bool((fresh & lost).any()) or (
                state.recent != recent_before)
            state.through = last
        return out

class Condition(BaseModel):
    """One node: exactly one of ``all``, ``any``, ``not``, ``score``, ``value``, ``event``,
    ``device``, ``time``, ``episodes``, ``lost``."""

    model_config = _STRICT

    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)
    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    not_: Condition | None = Field(default=None, alias="not")
    score: ScoreTest | None = None
    value: ValueTest | None = None
    event: EventTest | None = None
    device: DeviceTest | None = None
    time: TimeTest | None = None
    episodes: EpisodesTest | None = None
    lost: LostTest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            keys = "all, any, not, score, value, event, device, time, episodes, lost"
            raise ValueError(f"a condition has exactly one of: {keys} (got {len(given)})")
        return self

    def mask(self, ctx: Context) -> Mask:
        """Per sample: is the condition true?"""
        if self.all_ is not None:
            out = np.ones(ctx.batch.n_samples, dtype=np.bool_)
            for child in self.all_:
                out &= child.mask(ctx)
            return out
        if self.any_ is not None:
            out = ctx.none()
            for child in self.any_:
                out |= child.mask(ctx)
            return out
        if self.not_ is not None:
            inverted: Mask = ~self.not_.mask(ctx)
            return inverted
        leaf = (self.score or self.value or self.event or self.device or self.time
                or self.episodes or self.lost)
        assert leaf is not None  # the validator guarantees one
        return leaf.mask(ctx)

    def event_window(self) -> float:
        """The longest ``within`` of the event tests in this tree (0: it looks at none); the
        evaluator keeps this much detector event history."""
        if self.event is not None:
            return self.event.within
        children = [*(self.all_ or ()), *(self.any_ or ()),
                    *((self.not_,) if self.not_ is not None else ()),
                    *((self.episodes.of,) if self.episodes is not None else ())]
        return max((child.event_window() for child in children), default=0.0)


EpisodesTest.model_rebuild()
