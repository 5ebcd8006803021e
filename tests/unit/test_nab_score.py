"""The NAB scorer on hand-made cases whose answers are known."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.nab_eval import leave_one_category_out
from benchmarks.nab_scoring import (
    FileLabels,
    Profile,
    probation_rows,
    row_weights,
    scaled_sigmoid,
    score_at,
    sweep,
)

STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)

# 100 rows: probation is the first 15; one window at rows 50..59 (w = 10)
LAB = {"a.csv": FileLabels(n_rows=100, windows=[(50, 59)])}


def _scores(*rows: int, value: float = 1.0) -> dict[str, np.ndarray]:
    s = np.zeros(100)
    for r in rows:
        s[r] = value
    return {"a.csv": s}


def test_scaled_sigmoid_edges() -> None:
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)


def test_probation_length() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(4032) == 604
    assert probation_rows(22695) == 750


@pytest.mark.parametrize(
    ("rows", "raw", "normalised"),
    [
        pytest.param((50,), 1.0, 100.0, id="left-edge-full-tp"),
        pytest.param((), -1.0, 0.0, id="miss-costs-fn"),
        pytest.param((50, 51, 55), 1.0, 100.0, id="only-earliest-counts"),
        pytest.param((30,), -1.0, 0.0, id="fp-alone-is-not-worth-it"),
        pytest.param((10,), -1.0, 0.0, id="probation-ignored"),
    ],
)
def test_single_window_cases(rows: tuple[int, ...], raw: float, normalised: float) -> None:
    result = sweep(LAB, _scores(*rows), STANDARD)
    assert result.raw == pytest.approx(raw)
    assert result.normalised == pytest.approx(normalised)


def test_fp_before_any_window_costs_full_fp() -> None:
    # threshold picks both rows: tp 1.0 plus an fp of -0.11 at row 30 (no window before it)
    s = _scores(50)
    s["a.csv"][30] = 0.9
    s["a.csv"][50] = 0.8
    result = sweep(LAB, s, STANDARD)
    assert result.raw == pytest.approx(1.0 - 0.11)
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)


def test_tp_reward_falls_towards_right_edge() -> None:
    reward, window_of = row_weights(LAB["a.csv"])
    inside = reward[50:60]
    assert inside[0] == pytest.approx(1.0)
    assert np.all(np.diff(inside) < 0) and inside[-1] > 0
    assert window_of[49] == -1 and window_of[50] == 0
    # right after the window an fp is cheap, far after it costs the full -1
    assert -1.0 < reward[60] < 0.0 and reward[99] == -1.0


def test_detection_at_window_centre() -> None:
    result = sweep(LAB, _scores(55), STANDARD)
    expected = scaled_sigmoid(-5 / 10) / scaled_sigmoid(-1.0)
    assert result.raw == pytest.approx(expected)


def test_low_fn_profile_doubles_the_miss() -> None:
    result = sweep(LAB, _scores(), LOW_FN)
    assert result.raw == pytest.approx(-2.0) and result.normalised == 0.0


def test_threshold_sweep_picks_the_best_cut() -> None:
    # three fps score 0.9; the tp scores 0.5: cutting at 0.5 gives 1 - 3 * 0.11 > 0 over null
    s = _scores(50, value=0.5)
    for r in (20, 25, 30):
        s["a.csv"][r] = 0.9
    result = sweep(LAB, s, STANDARD)
    assert result.threshold == 0.5
    assert result.raw == pytest.approx(1.0 - 0.33)


@pytest.mark.parametrize(
    ("threshold", "tp", "fp"),
    [pytest.param(0.95, 0, 1, id="above-the-tp"), pytest.param(0.5, 1, 1, id="both"),
     pytest.param(1.5, 0, 0, id="nothing")],
)
def test_score_at_a_given_threshold_agrees_with_the_sweep(
        threshold: float, tp: int, fp: int) -> None:
    s = _scores(50, value=0.6)
    s["a.csv"][30] = 0.96
    r = score_at(LAB, s, STANDARD, threshold)
    assert (r.tp, r.fp, r.fn) == (tp, fp, 1 - tp)
    assert r.raw == pytest.approx(-1.0 + tp * 2.0 - 0.11 * fp)
    best = sweep(LAB, s, STANDARD)
    assert score_at(LAB, s, STANDARD, best.threshold).raw == pytest.approx(best.raw)


def test_leave_one_category_out_scores_a_folder_at_the_others_threshold() -> None:
    # folder b's detection scores 0.5; folder a's threshold (its fp at 0.9 is worth excluding,
    # its tp scores 0.95) is 0.95, so b scored at a's threshold misses its window
    labels = {"a/x.csv": LAB["a.csv"], "b/y.csv": LAB["a.csv"]}
    a = _scores(50, value=0.95)["a.csv"]
    a[30] = 0.9
    b = _scores(50, value=0.5)["a.csv"]
    loco = leave_one_category_out(labels, {"c": {"a/x.csv": a, "b/y.csv": b}}, STANDARD)
    folds = loco["folds"]
    assert isinstance(folds, dict)
    assert folds["b"]["score"] == 0.0 and folds["b"]["own"] == 100.0
    assert folds["a"]["threshold"] == 0.5 and folds["a"]["fp"] == 1
    assert loco["worst"] == 0.0
