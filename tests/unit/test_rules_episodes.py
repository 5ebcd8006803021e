"""Table-driven tests of the ``episodes`` condition: counting separate runs of a condition in a
window, across batch boundaries, through a restart, and its validation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from core.events import ScoredBatch
from rules.conditions import Condition, Context, EpisodeState
from rules.db import connect
from rules.evaluate import RuleEvaluator
from rules.model import Rule
from rules.registry import DeviceMeta
from rules.states import StateStore

STEP = 60.0
META = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
#: sample codes: H high score, L low score, N a lost sample (every value and score NaN)
_CODES = {"H": (0.9, 1.0), "L": (0.1, 1.0), "N": (np.nan, np.nan)}


def batches(pattern: str) -> list[ScoredBatch]:
    """One batch per ``|``-separated part of ``pattern``; one sample a minute throughout."""
    out, t0 = [], 0.0
    for part in pattern.split("|"):
        rows = [_CODES[c] for c in part]
        scores = np.array([s for s, _ in rows], dtype=np.float64).reshape(len(part), 1)
        values = np.array([v for _, v in rows], dtype=np.float64).reshape(len(part), 1)
        t = t0 + np.arange(len(part), dtype=np.float64) * STEP
        out.append(ScoredBatch("acme", "hp-1", "heat_pump", ("a",), t, values, scores))
        t0 += len(part) * STEP
    return out


def masks(spec: dict[str, Any], pattern: str) -> str:
    """The condition's mask over ``pattern`` as 0/1 characters, ``|`` between batches."""
    cond = Condition.model_validate({"episodes": spec})
    memory: dict[str, EpisodeState] = {}
    parts = []
    for batch in batches(pattern):
        ctx = Context.of(batch, META, None, ())
        mask = cond.mask(replace(ctx, memory=memory))
        parts.append("".join("1" if m else "0" for m in mask))
    return "|".join(parts)


HIGH = {"score": {"at_least": 0.8}}
MISSING = {"not": {"value": {"field": "a", "above": -1.0e9}}}

CASES = [
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600},
                 "HLHL", "0011", id="second-run-makes-two"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600},
                 "HHHH", "0000", id="one-long-run-is-one-episode"),
    pytest.param({"of": HIGH, "at_least": 3, "within": 3600},
                 "HLHLH", "00001", id="three-runs"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600, "min_length": 60},
                 "HLHHLHH", "0000001", id="short-run-does-not-count"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600, "min_length": 60},
                 "HHLHLLL", "0000000", id="min-length-never-reached"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 180},
                 "HLHLLL", "001100", id="window-ages-episodes-out"),
    pytest.param({"of": HIGH, "at_least": 1, "within": 3600, "min_length": 120},
                 "HH|HL", "00|11", id="run-continues-across-batches"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600},
                 "HH|HL|H", "00|00|1", id="run-across-batches-counts-once"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600},
                 "HL|H", "00|1", id="episodes-in-different-batches"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600, "max_gap": 120},
                 "HLHLLH", "000001", id="max-gap-joins-short-dropouts"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600, "max_gap": 120},
                 "HL|HLL|H", "00|000|1", id="max-gap-across-batches"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600, "max_gap": 60},
                 "HNH", "001", id="max-gap-of-one-step-joins-nothing"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 3600},
                 "HNH", "001", id="lost-sample-splits-without-max-gap"),
    pytest.param({"of": {"any": [HIGH, MISSING]}, "at_least": 2, "within": 3600,
                  "min_length": 60, "max_gap": 120},
                 "NHNLLLHNLN", "0000000111", id="inner-tree-with-lost-samples"),
    pytest.param({"of": HIGH, "at_least": 1, "within": 3600},
                 "", "", id="empty-batch"),
]


@pytest.mark.parametrize(("spec", "pattern", "expected"), CASES)
def test_episodes_mask(spec: dict[str, Any], pattern: str, expected: str) -> None:
    assert masks(spec, pattern) == expected


def test_same_mask_however_the_stream_is_split() -> None:
    spec = {"of": HIGH, "at_least": 3, "within": 1800, "min_length": 60, "max_gap": 120}
    rng = np.random.default_rng(7)
    stream = "".join(rng.choice(list("HHLLLN"), size=400))
    whole = masks(spec, stream).replace("|", "")
    for seed in range(5):
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, 400), 12,
                                                            replace=False))
        pieces = np.split(np.array(list(stream)), cuts)
        split = "|".join("".join(p) for p in pieces)
        assert masks(spec, split).replace("|", "") == whole


def test_a_batch_seen_again_changes_nothing() -> None:
    cond = Condition.model_validate({"episodes": {"of": HIGH, "at_least": 2, "within": 3600}})
    memory: dict[str, EpisodeState] = {}
    first, second = batches("HL|HL")
    ctx = replace(Context.of(first, META, None, ()), memory=memory)
    once = cond.mask(ctx).tolist()
    again = cond.mask(ctx).tolist()  # e.g. the same test in `when` and in `clear`
    assert once == again == [False, False]
    later = cond.mask(replace(Context.of(second, META, None, ()), memory=memory)).tolist()
    assert later == [True, True]


RULE = {"name": "flaky", "for": 0, "resolve_after": 60,
        "when": {"episodes": {"of": HIGH, "at_least": 3, "within": 3600, "min_length": 60}}}


def _transitions(ev: RuleEvaluator, stream: list[ScoredBatch]) -> list[tuple[str, float]]:
    return [(t.kind, t.at) for b in stream for t in ev.evaluate(b, META)]


def test_rule_fires_at_the_third_episode() -> None:
    ev = RuleEvaluator((Rule.model_validate(RULE),))
    got = _transitions(ev, batches("HHLL|HHLL|HHLL"))
    assert got[0] == ("fired", 540.0)


def test_memory_survives_a_restart() -> None:
    stream = batches("HHLL|HHLL|HHLL")
    rule = Rule.model_validate(RULE)
    straight = _transitions(RuleEvaluator((rule,)), stream)
    engine = connect("sqlite://")
    store = StateStore(engine)
    before = RuleEvaluator((rule,))
    assert _transitions(before, stream[:2]) == []
    store.save(before.take_dirty())
    after = RuleEvaluator((rule,), store.load())
    assert _transitions(after, stream[2:]) == straight
    engine.dispose()


def test_memory_round_trips_through_json() -> None:
    state = EpisodeState([1.0, 5.0], [2.0, 6.0], 9.0, 10.0, True, True, 11.0)
    assert EpisodeState.from_json(state.to_json()) == state


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"of": HIGH, "at_least": 0, "within": 60}, "greater than or equal to 1",
                 id="at-least-zero"),
    pytest.param({"of": HIGH, "at_least": 2}, "within", id="within-missing"),
    pytest.param({"of": HIGH, "at_least": 2, "within": 60, "min_lenght": 60},
                 "Extra inputs are not permitted", id="misspelt-key"),
    pytest.param({"of": {}, "at_least": 2, "within": 60}, "exactly one of",
                 id="empty-inner-condition"),
])
def test_invalid_episodes(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate({"episodes": spec})
