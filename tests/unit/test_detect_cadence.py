"""Half-lives that mean a time: a slow series learns over as long a time as a 5-minute one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.detect import DetectorConfig, Ensemble, make_detector
from core.detect.cadence import Cadence

N = 700
RNG = np.random.default_rng(5)
X = (10.0 + np.sin(np.arange(N) / 12.0) + RNG.normal(0.0, 0.4, N))[:, None]
X[450:470] += 5.0  # a level that moves and stays a while
SLOT = np.array([0], dtype=np.int64)


def _scores(config: DetectorConfig, step: float, cuts: tuple[int, ...] = ()) -> np.ndarray:
    """Onset scores, then the level, seasonal and transition scores, one column each."""
    det = make_detector(config)
    t = step * np.arange(N, dtype=np.float64)
    parts = []
    for lo, hi in itertools.pairwise([0, *cuts, N]):
        fired = det.update(SLOT, X[lo:hi], t[lo:hi])
        comps = det.last_components()
        parts.append(np.hstack([fired, *(comps[n] for n in ("level", "seasonal", "transition"))]))
    return np.vstack(parts)


@pytest.mark.parametrize("step", [60.0, 300.0])
def test_a_series_sampled_as_often_as_the_reference_keeps_its_sample_counts(step: float) -> None:
    off = DetectorConfig(half_life_interval_s=0.0)
    np.testing.assert_array_equal(_scores(DetectorConfig(), step), _scores(off, step))


@pytest.mark.parametrize(("step", "factor"), [(900.0, 1.0 / 3.0), (600.0, 0.5),
                                              (3600.0, 1.0 / 3.0)])
def test_a_slower_series_learns_over_as_long_a_time(step: float, factor: float) -> None:
    # 15-minute rows: the same as a third of the sample counts; hourly: never below a third
    counts = DetectorConfig(half_life_interval_s=0.0, level_half_life=500.0 * factor,
                            transition_half_life=500.0 * factor)
    timed = _scores(DetectorConfig(), step)
    np.testing.assert_array_equal(timed, _scores(counts, step))
    assert not np.array_equal(timed, _scores(DetectorConfig(half_life_interval_s=0.0), step))


@pytest.mark.parametrize("cuts", [(1,), (1, 2), (2, 64), (1, 300, 301)])
def test_the_step_from_the_first_two_rows_gives_the_same_scores_for_any_cut(
        cuts: tuple[int, ...]) -> None:
    # a first block of one row: the step comes with the second, before anything scaled learns
    np.testing.assert_array_equal(_scores(DetectorConfig(), 900.0, cuts),
                                  _scores(DetectorConfig(), 900.0))


def test_fields_of_different_cadence_in_one_call_each_get_their_own() -> None:
    # slot 1 first seen at 5 minutes, slot 0 at 15: one call then scales only slot 0 (a
    # 2-field device runs the per-field detectors when configured to)
    t = 900.0 * np.arange(N, dtype=np.float64) + 1e6
    names = ("level", "seasonal", "transition")
    config = DetectorConfig(field_level_max_fields=2)
    both = make_detector(config)
    both.update(np.array([1]), X[:2], np.array([0.0, 300.0]))
    both.update(np.array([0, 1]), np.hstack([X, X]), t)
    together = {n: both.last_components()[n].copy() for n in names}
    alone = make_detector(config)
    alone.update(np.array([1]), X[:2], np.array([0.0, 300.0]))
    for j in (0, 1):
        alone.update(np.array([j]), X, t)
        for n in names:
            np.testing.assert_array_equal(together[n][:, j], alone.last_components()[n][:, 0])
    assert not np.array_equal(together["level"][:, 0], together["level"][:, 1])


def test_the_step_survives_a_checkpoint_and_unknown_steps_keep_the_counts() -> None:
    det = make_detector()
    det.update(SLOT, X[:2], np.array([0.0, 3600.0]))
    restored = Ensemble.from_state(det.state())
    assert restored.cadence.steps(SLOT).tolist() == [3600.0]
    cad = Cadence(capacity=3)
    cad.learn(np.array([0, 1, 2]), np.array([5.0, 5.0]))          # a step of 0: unknown
    cad.learn(np.array([2]), None)                                 # no times
    assert cad.factors(np.array([0, 1, 2]), 300.0, 1.0 / 3.0).tolist() == [1.0, 1.0, 1.0]
