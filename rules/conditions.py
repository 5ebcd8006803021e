"""The condition tree of a rule: ``all``/``any``/``not`` over five kinds of test, never ``eval``.

Each node turns one scored batch into a boolean per sample, with numpy over the whole batch:

- ``score``: anomaly score of the rule's fields at least ``at_least`` (on ``count`` fields at once)
- ``value``: raw telemetry ``above``/``below`` a limit
- ``event``: a detector event (``detector`` kind, ``field``, ``score_at_least``, a predicted
  ``time_to_limit_below``) happened ``within`` the last while
- ``device``: device metadata (``product``, ``firmware``, ``tier``, ``timezone``, ``customer``;
  shell-style patterns such as ``"2.*"``)
- ``time``: local ``hours`` and ``weekdays`` in the device's time zone (or ``zone: utc``)

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
from dataclasses import dataclass
from typing import Literal

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
    "EventTest",
    "ScoreTest",
    "TimeTest",
    "ValueTest",
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
    """A raw value above and/or below a limit (a missing or NaN value is never true)."""

    model_config = _STRICT

    field: str
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _a_limit(self) -> ValueTest:
        if self.above is None and self.below is None:
            raise ValueError("a value test needs 'above', 'below' or both")
        return self

    def mask(self, ctx: Context) -> Mask:
        """Per sample."""
        if self.field not in ctx.batch.fields:
            return ctx.none()
        col = ctx.batch.values[:, ctx.batch.fields.index(self.field)]
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


class Condition(BaseModel):
    """One node: exactly one of ``all``, ``any``, ``not``, ``score``, ``value``, ``event``,
    ``device``, ``time``."""

    model_config = _STRICT

    all_: tuple[Condition, ...] | None = Field(default=None, alias="all", min_length=1)
    any_: tuple[Condition, ...] | None = Field(default=None, alias="any", min_length=1)
    not_: Condition | None = Field(default=None, alias="not")
    score: ScoreTest | None = None
    value: ValueTest | None = None
    event: EventTest | None = None
    device: DeviceTest | None = None
    time: TimeTest | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            keys = "all, any, not, score, value, event, device, time"
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
        leaf = self.score or self.value or self.event or self.device or self.time
        assert leaf is not None  # the validator guarantees one
        return leaf.mask(ctx)

    def event_window(self) -> float:
        """The longest ``within`` of the event tests in this tree (0: it looks at none); the
        evaluator keeps this much detector event history."""
        if self.event is not None:
            return self.event.within
        children = [*(self.all_ or ()), *(self.any_ or ()),
                    *((self.not_,) if self.not_ is not None else ())]
        return max((child.event_window() for child in children), default=0.0)
