"""Streaming properties of the ensemble: any cut of the stream, any checkpoint, same scores."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.detect import DetectorConfig, Ensemble, make_detector

N = 900
RNG = np.random.default_rng(12)
T = 300.0 * np.arange(N, dtype=np.float64)
X = (20.0 + np.sin(np.arange(N) / 30.0) + RNG.normal(0.0, 0.3, N))[:, None]
X[600:640] += 6.0
X[700, 0] = np.nan
SLOT = np.array([0], dtype=np.int64)
WHOLE = make_detector().update(SLOT, X, T)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, N - 1), max_size=8, unique=True),
       checkpoint=st.booleans())
def test_any_cut_and_checkpoint_give_the_same_scores(cuts: list[int], checkpoint: bool) -> None:
    det = make_detector()
    parts = []
    bounds = [0, *sorted(cuts), N]
    for lo, hi in itertools.pairwise(bounds):
        parts.append(det.update(SLOT, X[lo:hi], T[lo:hi]))
        if checkpoint:  # a core restart between every batch
            det = Ensemble.from_state(det.state())
    np.testing.assert_array_equal(np.vstack(parts), WHOLE)


#: the window shape novelty on (off by default), into the onset and into the raw scores: its
#: open block, ring, categories and held score carry over
SHAPES = [{"window_shape_weight": 0.5, "window_shape_learn": 300},
          {"window_shape_raw_weight": 0.5, "window_shape_learn": 300}]
WHOLE_SHAPE = [make_detector(DetectorConfig(**shape)).update(SLOT, X, T) for shape in SHAPES]


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(1, N - 1), max_size=8, unique=True),
       checkpoint=st.booleans(), which=st.integers(0, len(SHAPES) - 1))
def test_window_shape_any_cut_and_checkpoint_give_the_same_scores(
        cuts: list[int], checkpoint: bool, which: int) -> None:
    shape = SHAPES[which]
    det = make_detector(DetectorConfig(**shape))
    parts = []
    bounds = [0, *sorted(cuts), N]
    for lo, hi in itertools.pairwise(bounds):
        parts.append(det.update(SLOT, X[lo:hi], T[lo:hi]))
        if checkpoint:
            assert "window_shape.cats" in det.state()
            det = Ensemble.from_state(det.state(), **shape)
    np.testing.assert_array_equal(np.vstack(parts), WHOLE_SHAPE[which])
