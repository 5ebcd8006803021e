"""Table-driven tests of the ``lost`` condition (bursts of lost samples, judged against the
device's own usual loss rate) and of ``value`` with ``minus`` (the spread of two fields)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from core.events import ScoredBatch
from rules.conditions import Condition, Context, LossState, Memory, memory_from_json
from rules.db import connect
from rules.evaluate import RuleEvaluator
from rules.model import Rule
from rules.registry import DeviceMeta
from rules.states import StateStore

STEP = 60.0
META = DeviceMeta("acme", "bat-1", "home_battery", "kim")


def batches(pattern: str, t0: float = 0.0) -> list[ScoredBatch]:
    """One batch per ``|``-separated part; ``.`` a sample, ``N`` a lost one, ``f`` a sample
    with one of its two fields missing (not a lost sample)."""
    out = []
    for part in pattern.split("|"):
        rows = {".": (1.0, 2.0), "N": (np.nan, np.nan), "f": (np.nan, 2.0)}
        values = np.array([rows[c] for c in part], dtype=np.float64).reshape(len(part), 2)
        t = t0 + np.arange(len(part), dtype=np.float64) * STEP
        out.append(ScoredBatch("acme", "bat-1", "home_battery", ("a", "b"), t, values,
                               np.zeros((len(part), 2))))
        t0 += len(part) * STEP
    return out


def masks(spec: dict[str, Any], pattern: str, memory: dict[str, Memory] | None = None,
          t0: float = 0.0) -> str:
    """The condition's mask over ``pattern`` as 0/1 characters, ``|`` between batches."""
    cond = Condition.model_validate({"lost": spec})
    memory = {} if memory is None else memory
    parts = []
    for batch in batches(pattern, t0):
        mask = cond.mask(replace(Context.of(batch, META, None, ()), memory=memory))
        parts.append("".join("1" if m else "0" for m in mask))
    return "|".join(parts)


#: a device known to lose about one sample in 500
TEN = {"within": 600, "at_least": 2, "prior_rate": 0.002, "prior_samples": 1440}

CASES = [
    pytest.param(TEN, "..N.N...", "00001111", id="two-in-ten-minutes"),
    pytest.param(TEN, "N..........N", "000000000000", id="two-too-far-apart"),
    pytest.param(TEN, "N.........N", "00000000001", id="window-is-inclusive-of-ten-min"),
    pytest.param(TEN, "..f.f...", "00000000", id="one-field-missing-is-no-loss"),
    pytest.param(TEN, "..N|.N..", "000|0111", id="burst-across-batches"),
    pytest.param({**TEN, "at_least": 3}, "N.N.N.", "000011", id="at-least-three"),
    pytest.param({"within": 300, "at_least": 2}, "N.N......NNN..", "00000000000111",
                 id="a-new-device-is-assumed-lossy"),
    pytest.param(TEN, "", "", id="empty-batch"),
]


@pytest.mark.parametrize(("spec", "pattern", "expected"), CASES)
def test_lost_mask(spec: dict[str, Any], pattern: str, expected: str) -> None:
    assert masks(spec, pattern) == expected


def test_a_lossy_device_needs_a_bigger_burst() -> None:
    # one sample in ten lost, for days: two or three in ten minutes is its normal
    rng = np.random.default_rng(3)
    history = "".join(np.where(rng.random(3 * 1440) < 0.1, "N", "."))
    spec = TEN
    memory: dict[str, Memory] = {}
    masks(spec, history, memory)
    later = len(history) * STEP
    assert masks(spec, "." * 20 + "N.N.N" + "." * 20, memory, later).count("1") == 0
    assert "1" in masks(spec, "." * 20 + "NNNNNNN" + "." * 20, memory, later + 45 * STEP)
    # a device that rarely loses a sample: the same three-in-five is a burst
    assert "1" in masks(spec, "." * 20 + "N.N.N" + "." * 20)


def test_same_mask_however_the_stream_is_split() -> None:
    rng = np.random.default_rng(7)
    stream = "".join(rng.choice(list("......N"), size=400))
    whole = masks(TEN, stream).replace("|", "")
    for seed in range(5):
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, 400), 12,
                                                            replace=False))
        split = "|".join("".join(p) for p in np.split(np.array(list(stream)), cuts))
        assert masks(TEN, split).replace("|", "") == whole


def test_a_batch_seen_again_changes_nothing() -> None:
    cond = Condition.model_validate({"lost": TEN})
    memory: dict[str, Memory] = {}
    first, second = batches("..N|.N..")
    ctx = replace(Context.of(first, META, None, ()), memory=memory)
    once = cond.mask(ctx).tolist()
    assert cond.mask(ctx).tolist() == once == [False, False, False]
    assert cond.mask(replace(Context.of(second, META, None, ()),
                             memory=memory)).tolist() == [False, True, True, True]


RULE = {"name": "flaky", "for": 0, "resolve_after": 60,
        "when": {"episodes": {"of": {"lost": TEN}, "at_least": 2, "within": 86400,
                              "max_gap": 300}}}


def _transitions(ev: RuleEvaluator, stream: list[ScoredBatch]) -> list[tuple[str, float]]:
    return [(t.kind, t.at) for b in stream for t in ev.evaluate(b, META)]


def test_rule_fires_at_the_second_burst_and_survives_a_restart() -> None:
    quiet = "." * 300
    stream = batches(f"NN{quiet}|{quiet}|NN{quiet}")
    rule = Rule.model_validate(RULE)
    straight = _transitions(RuleEvaluator((rule,)), stream)
    assert straight[0] == ("fired", 603 * STEP)   # the second loss of the second burst
    engine = connect("sqlite://")
    store = StateStore(engine)
    before = RuleEvaluator((rule,))
    assert _transitions(before, stream[:2]) == []
    store.save(before.take_dirty())
    after = RuleEvaluator((rule,), store.load())
    assert _transitions(after, stream[2:]) == straight
    engine.dispose()


def test_memory_round_trips_through_json() -> None:
    state = LossState(1440.5, 3.25, [60.0, 120.0], 180.0)
    assert memory_from_json(state.to_json()) == state


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"within": 600, "at_least": 0}, "greater than or equal to 1", id="zero"),
    pytest.param({"within": 600, "unusual": 1.5}, "less than 1", id="unusual-above-one"),
    pytest.param({"withn": 600}, "Extra inputs are not permitted", id="misspelt-key"),
])
def test_invalid_lost(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate({"lost": spec})


def _cells(rows: list[tuple[float, float]]) -> ScoredBatch:
    values = np.array(rows, dtype=np.float64)
    return ScoredBatch("acme", "bat-1", "home_battery", ("cell_v_min", "cell_v_max"),
                       np.arange(len(rows)) * STEP, values, np.zeros(values.shape))


@pytest.mark.parametrize(("spec", "rows", "expected"), [
    pytest.param({"field": "cell_v_max", "minus": "cell_v_min", "above": 0.04},
                 [(3.30, 3.31), (3.28, 3.35), (np.nan, 3.35), (3.30, np.nan)],
                 [False, True, False, False], id="spread-above-nan-never"),
    pytest.param({"field": "cell_v_max", "minus": "cell_v_min", "below": 0.0},
                 [(3.30, 3.31), (3.32, 3.31)], [False, True], id="spread-below"),
    pytest.param({"field": "cell_v_max", "minus": "pack_temp", "above": 0.0},
                 [(3.30, 3.31)], [False], id="missing-field-is-never-true"),
])
def test_value_minus(spec: dict[str, Any], rows: list[tuple[float, float]],
                     expected: list[bool]) -> None:
    cond = Condition.model_validate({"value": spec})
    assert cond.mask(Context.of(_cells(rows), META, None, ())).tolist() == expected
