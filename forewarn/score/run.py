"""Streaming a read file through the service's detector and rule evaluator, device by device.

Each device gets its own :class:`~core.pipeline.CorePipeline` over the detector
:func:`~core.detect.make_detector` builds (``DetectorConfig()``, the service's default,
unless a config says otherwise) and its own :class:`~rules.evaluate.RuleEvaluator`. Rows go in
blocks in time order, as batches from the device would: nothing looks ahead. During the
warm-up the detector learns and the rules are not evaluated; after it, ``alarm`` is 1 on every
row where a rule's alarm is *firing* (the state that opens a case) and ``onset`` marks the
first row of each run of alarm rows.

The default rules are generic: a level of at least 0.85 on any field, held for ``hold`` (10
sample intervals unless told), recovering once every field is below 0.5; and a stuck sensor
(the stuck detector's finding, which is no part of the level) for three hold times.

>>> import numpy as np
>>> from forewarn.score.read import DeviceSeries
>>> rng = np.random.default_rng(1)
>>> load = rng.normal(0.0, 1.0, 3000)
>>> x = np.c_[load, 2.0 * load + 1.0, -load] + rng.normal(0.0, 0.05, (3000, 3))
>>> x[2500:, 1] -= 3.0                              # b leaves its relation to a and c
>>> series = DeviceSeries("rig", np.arange(3000), np.arange(3000.0), x)
>>> result = score_device(series, ("a", "b", "c"), ScoreOptions(warmup="1000"))
>>> bool(result.alarm[:2500].any()), bool(result.alarm[2520:].all())
(False, True)
>>> [(e.start_row - 2500 < 30, e.field) for e in result.episodes]     # within the hold
[(True, 'b')]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from core.detect import DetectorConfig, make_detector
from core.events import ScoredBatch
from core.pipeline import CorePipeline
from core.store.base import SeriesFrame
from edge.schema import TelemetryBatch
from forewarn.score.errors import ScoreError
from forewarn.score.read import SINGLE_DEVICE, DeviceSeries
from rules.conditions import Condition, EventTest, ScoreTest
from rules.evaluate import RuleEvaluator, Transition
from rules.model import Rule
from rules.registry import DeviceMeta
from rules.timeparse import parse_duration

__all__ = [
    "DEFAULT_HOLD_ROWS",
    "GENERIC_LEVEL",
    "SHORT_FILE_WARMUPS",
    "STUCK_HOLDS",
    "DeviceResult",
    "Episode",
    "ScoreOptions",
    "default_rules",
    "missing_rule_fields",
    "rows_or_seconds",
    "score_device",
]

#: the default rule holds its condition this many sample intervals before it fires
DEFAULT_HOLD_ROWS = 10
#: the stuck-sensor rule alarms for this many hold times after the stuck detector fires
STUCK_HOLDS = 3
#: a device with fewer rows than this many detector warm-ups learns from its first share
SHORT_FILE_WARMUPS = 3
_TENANT = "score"


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """How to score: the detector's configuration, warm-up, the rules and the block size.

    ``warmup`` and ``hold`` are a row count (``"500"``) or a duration (``"2h"``); ``warmup``
    None keeps the detector's own warm-up (a third of the rows for a device with fewer than
    three warm-ups of rows). ``rules`` None: the generic :func:`default_rules`.
    """

    config: DetectorConfig = field(default_factory=DetectorConfig)
    warmup: str | None = None
    hold: str = str(DEFAULT_HOLD_ROWS)
    rules: tuple[Rule, ...] | None = None
    #: the devices' product, for rules that apply to one product only
    product: str = "generic"
    block_rows: int = 4096


@dataclass(frozen=True, slots=True)
class Episode:
    """A run of alarm rows of one device: rows are indexes into the device's time order."""

    device_id: str
    start_row: int
    end_row: int
    field: str
    peak_score: float


@dataclass(slots=True, eq=False)
class DeviceResult:
    """Per row (in the device's time order): level per field, alarm, onset, blamed field."""

    device_id: str
    scores: NDArray[np.float32]
    alarm: NDArray[np.bool_]
    onset: NDArray[np.bool_]
    #: index of the blamed field on alarm rows, -1 elsewhere
    blame: NDArray[np.int16]
    episodes: list[Episode]
    warmup_rows: int
    hold_s: float
    warnings: list[str]

    @property
    def anomaly_score(self) -> NDArray[np.float32]:
        """The highest field level of every row."""
        if self.scores.shape[1] == 0:
            return np.zeros(self.scores.shape[0], dtype=np.float32)
        out: NDArray[np.float32] = self.scores.max(axis=1)
        return out


def rows_or_seconds(text: str, what: str) -> tuple[Literal["rows", "seconds"], float]:
    """Parse ``--warmup``/``--hold``: a plain number is rows, a duration is seconds.

    >>> rows_or_seconds("500", "--warmup"), rows_or_seconds("2h", "--warmup")
    (('rows', 500.0), ('seconds', 7200.0))
    """
    text = text.strip()
    if text.isdigit():
        return "rows", float(text)
    try:
        return "seconds", parse_duration(text)
    except ValueError:
        raise ScoreError(f"{what} {text!r}: give rows (500) or a duration (30s, 10m, 2h, "
                         "1d)") from None


#: the level the generic rule alarms at (a little above core's event threshold: a file scored
#: without product rules wants fewer, surer alarms)
GENERIC_LEVEL = 0.85


def default_rules(hold_s: float) -> tuple[Rule, ...]:
    """The generic rules: any field's level at least GENERIC_LEVEL for ``hold_s`` (clear below 0.5),
    and a sensor that got stuck (alarm for three hold times after the stuck detector fires).

    >>> [(r.name, r.for_s) for r in default_rules(600.0)]
    [('anomaly', 600.0), ('stuck_sensor', 0.0)]
    """
    return (
        Rule.model_validate({
            "name": "anomaly", "description": "any field anomalous for the hold time",
            "score_at_least": GENERIC_LEVEL, "for": hold_s, "resolve_after": hold_s,
            "clear": Condition(not_=Condition(score=ScoreTest(at_least=0.5))),
        }),
        # a stuck reading is a finding of a rule detector, not part of the level
        Rule.model_validate({
            "name": "stuck_sensor", "description": "a sensor stuck at one value",
            "when": {"event": {"detector": ["stuck"], "within": STUCK_HOLDS * hold_s}},
            "for": 0.0, "resolve_after": 0.0,
        }),
    )


def missing_rule_fields(rules: tuple[Rule, ...], product: str,
                        fields: tuple[str, ...]) -> str | None:
    """A warning when rules for ``product`` name fields of which the file has none.

    >>> rule = Rule.model_validate({"name": "hot", "product": "heat_pump", "for": 0,
    ...                             "fields": ["discharge_temp"], "score_at_least": 0.9})
    >>> print(missing_rule_fields((rule,), "heat_pump", ("flow", "power")))  # doctest: +ELLIPSIS
    rule hot names a field this file does not have (discharge_temp; ...): it cannot fire
    >>> missing_rule_fields((rule,), "heat_pump", ("discharge_temp",)) is None
    True
    """
    blind = [r for r in rules if (r.product is None or r.product == product)
             and r.fields and not set(r.fields) & set(fields)]
    if not blind:
        return None
    missing = sorted({f for r in blind for f in r.fields or ()})
    names = ", ".join(r.name for r in blind)
    return (f"{'rule' if len(blind) == 1 else 'rules'} {names} "
            f"name{'s' if len(blind) == 1 else ''} {'fields' if len(missing) > 1 else 'a field'} "
            "this file does not have "
            f"({', '.join(missing)}; the file has {', '.join(fields) or 'none'}): "
            f"{'it' if len(blind) == 1 else 'they'} cannot fire")


class _Discard:
    """A store that keeps nothing: the output is written from the results instead."""

    def write(self, batch: ScoredBatch) -> None:
        """Discard."""

    def read(self, tenant: str, device_id: str, start: float, stop: float,
             every_s: float = 0.0) -> SeriesFrame:
        """Nothing was kept."""
        empty = np.zeros((0, 0))
        return SeriesFrame((), np.zeros(0), empty, empty)

    def count_samples(self, tenant: str | None = None) -> int:
        """Nothing was kept."""
        return 0

    def close(self) -> None:
        """Nothing to release."""


def _warmup_rows(t: NDArray[np.float64], options: ScoreOptions) -> int | None:
    if options.warmup is None:
        return None
    unit, amount = rows_or_seconds(options.warmup, "--warmup")
    if unit == "rows":
        return int(amount)
    return int(np.searchsorted(t, t[0] + amount, side="left")) if t.shape[0] else 0


def _config_for(base: DetectorConfig, n_fields: int, warm: int | None) -> DetectorConfig:
    update: dict[str, object] = {"capacity": max(n_fields, 1)}
    if warm is not None:
        # the detector's own warm-ups count samples: they end with the user's warm-up
        update["warmup"] = max(warm, 0)
        update["regression_warmup"] = max(warm, 2)
    return DetectorConfig.model_validate({**base.model_dump(), **update})


def _own_warmup(config: DetectorConfig) -> int:
    if config.regression_weight > 0.0:
        return max(config.regression_warmup, config.warmup)
    return config.warmup


def _hold_seconds(t: NDArray[np.float64], warm: int, hold: str) -> float:
    unit, amount = rows_or_seconds(hold, "--hold")
    if unit == "seconds":
        return amount
    head = t[: max(min(warm, t.shape[0]), 2)]
    steps = np.diff(head)
    steps = steps[steps > 0]
    interval = float(np.median(steps)) if steps.size else 1.0
    return amount * interval


def score_device(series: DeviceSeries, fields: tuple[str, ...],
                 options: ScoreOptions) -> DeviceResult:
    """Stream one device's rows through the detector and the rules; see the module doc."""
    n, k = series.values.shape
    warnings: list[str] = []
    who = "" if series.device_id == SINGLE_DEVICE else f"device {series.device_id}: "
    given = _warmup_rows(series.t, options)
    own = _own_warmup(_config_for(options.config, k, None))
    if given is None and n < SHORT_FILE_WARMUPS * own:
        # a short recording (a test-rig run) has no day of history to learn from: its first
        # third is the history, as a user would choose; the count of rows is no peek at values
        given = max(n // SHORT_FILE_WARMUPS, 2)
        warnings.append(f"{who}{n} rows, fewer than {SHORT_FILE_WARMUPS}"
                        f" × the detector's warm-up of {own}: it learns from the first {given}"
                        " rows (choose with --warmup)")
    config = _config_for(options.config, k, given)
    warm = min(given if given is not None else own, n)
    if k == 1 and config.field_level_weight <= 0.0 and config.subspace_weight <= 0.0:
        warnings.append(f"{who}one field: this configuration scores "
                        "fields by how they relate to each other, so a lone field scores 0")
    if k > 8 and config.regression_weight > 0.0 and config.subspace_weight <= 0.0:
        warnings.append(f"{who}{k} fields: the regression relates the "
                        "first 8, the rest score 0 (choose with --fields)")
    hold_s = _hold_seconds(series.t, warm, options.hold)
    rules = options.rules if options.rules is not None else default_rules(hold_s)
    if not any((r.product is None or r.product == options.product)
               and (r.fields is None or set(r.fields) & set(fields)) for r in rules):
        warnings.append(f"{who}no rule applies to product "
                        f"{options.product!r} with these fields: nothing can alarm "
                        "(see --product)")
    pipeline = CorePipeline(make_detector(config), _Discard())
    evaluator = RuleEvaluator(rules)
    meta = DeviceMeta(_TENANT, series.device_id, options.product, _TENANT)
    scores = np.zeros((n, k), dtype=np.float32)
    alarm = np.zeros(n, dtype=np.bool_)
    # rows alarmed by a rule on the level, and rows alarmed by a rule on events (stuck
    # sensor) with the field of the event: that field is to blame, not the highest level
    level_alarm = np.zeros(n, dtype=np.bool_)
    event_blame = np.full(n, -1, dtype=np.int16)
    event_tests = {r.name: _event_tests(r) for r in rules}
    event_field: dict[str, int] = {}
    fired_field: dict[int, str] = {}
    cuts = sorted({0, warm, n, *range(0, n, options.block_rows)})
    for seq, (start, stop) in enumerate(itertools.pairwise(cuts)):
        # arrays, not lists: the pipeline reads them with np.asarray (trusted, in-process)
        block: dict[str, Any] = {"t": series.t[start:stop],
                                 "values": series.values[start:stop]}
        batch = TelemetryBatch.model_construct(
            device_id=series.device_id, boot_id="score", seq=seq, product=options.product,
            firmware=None, fields=list(fields), **block)
        scored = pipeline.process(_TENANT, batch)
        if scored is None:  # pragma: no cover - every block has a new sequence number
            continue
        scores[start:stop] = np.nan_to_num(scored.scores, nan=0.0)
        if start < warm:
            continue
        before = {r.name: evaluator.status(r.name, _TENANT, series.device_id) for r in rules}
        transitions = evaluator.evaluate(scored, meta)
        block_t = series.t[start:stop]
        for rule in rules:
            mine = [tr for tr in transitions if tr.rule.name == rule.name]
            firing = _firing_rows(block_t, before[rule.name] == "firing", mine)
            alarm[start:stop] |= firing
            tests = event_tests[rule.name]
            if not tests:
                level_alarm[start:stop] |= firing
            for tr in mine:
                if tr.kind != "fired" or tr.alarm is None:
                    continue
                row = start + int(np.searchsorted(block_t, tr.at, side="left"))
                matching = [e for e in tr.alarm.events if e.field in fields
                            and any(test.matches(e, rule.fields) for test in tests)]
                if matching:
                    event_field[rule.name] = fields.index(matching[-1].field)
                    fired_field.setdefault(row, matching[-1].field)
                elif tr.alarm.field:
                    fired_field.setdefault(row, tr.alarm.field)
            if tests and rule.name in event_field:
                event_blame[start:stop][firing] = event_field[rule.name]
    onset = alarm & ~np.concatenate(([False], alarm[:-1]))
    blame = np.full(n, -1, dtype=np.int16)
    if k:
        blame[alarm] = scores[alarm].argmax(axis=1).astype(np.int16)
        by_event = alarm & ~level_alarm & (event_blame >= 0)
        blame[by_event] = event_blame[by_event]
    episodes = _episodes(series.device_id, fields, scores, alarm, onset, blame, fired_field)
    return DeviceResult(series.device_id, scores, alarm, onset, blame, episodes, warm, hold_s,
                        warnings)


def _event_tests(rule: Rule) -> list[EventTest]:
    """The event tests of a rule that looks at detector events and not at the level."""
    tests: list[EventTest] = []
    stack = [rule.condition] if rule.condition is not None else []
    while stack:
        node = stack.pop()
        if node.score is not None:
            return []
        if node.event is not None:
            tests.append(node.event)
        stack += [*(node.all_ or ()), *(node.any_ or ())]
        if node.not_ is not None:
            stack.append(node.not_)
    return tests


def _firing_rows(t: NDArray[np.float64], firing: bool,
                 transitions: list[Transition]) -> NDArray[np.bool_]:
    """Rows of a block where the rule's alarm is firing, from its state changes."""
    out = np.zeros(t.shape[0], dtype=np.bool_)
    position, before_silence = 0, firing
    for tr in transitions:
        row = int(np.searchsorted(t, tr.at, side="left"))
        out[position:row] = firing
        position = max(position, row)
        if tr.kind in ("fired", "refired"):
            firing = True
        elif tr.kind == "no_data":
            before_silence, firing = firing, False
        elif tr.kind == "data_back":
            firing = before_silence
        elif tr.kind == "resolved":
            # not at "recovering": the evaluator may go back to firing from there without a
            # transition (a level between clear and the bar), so the alarm holds until resolved
            firing = False
    out[position:] = firing
    return out


def _episodes(device_id: str, fields: tuple[str, ...], scores: NDArray[np.float32],
              alarm: NDArray[np.bool_], onset: NDArray[np.bool_], blame: NDArray[np.int16],
              fired_field: dict[int, str]) -> list[Episode]:
    starts = np.flatnonzero(onset)
    ends = np.flatnonzero(alarm & ~np.concatenate((alarm[1:], [False])))
    out: list[Episode] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        peak = float(scores[a:b + 1].max()) if scores.shape[1] else 0.0
        name = fired_field.get(a) or fields[int(blame[a])]
        out.append(Episode(device_id, a, b, name, round(peak, 4)))
    return out
