"""One conformance suite over every detector (River's ``check_estimator`` idea).

Each detector must give finite scores in [0, 1], be deterministic, round-trip its state through
a checkpoint, survive NaN/Inf samples without poisoning its state, and its numba kernel must
agree with the same code run as plain Python/numpy (``kernel.py_func``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.detect import (
    AnomalyLikelihood,
    DetectorConfig,
    Drift,
    Dropout,
    Ensemble,
    Extreme,
    Multivariate,
    Onset,
    OutOfRange,
    RateOfChange,
    RobustZ,
    Seasonal,
    Stuck,
    Transition,
)
from core.detect.cadence import Cadence, cadence_reference, cadence_update
from core.detect.field_level import FieldLevel
from core.detect.onset import TimedOnset
from core.detect.peer import Peer
from core.detect.regression import Regression
from core.detect.robust_z import robust_z_reference, robust_z_update
from core.detect.subspace import Subspace
from core.detect.window_shape import WindowShape, window_shape_reference, window_shape_update


def _peers() -> Peer:
    """Two series, peers of each other, each its own cohort; two samples per bucket."""
    det = Peer(capacity=2, bucket_s=1200.0, lag_s=0.0, warmup=3, min_members=2, min_cohort=1)
    det.assign([0, 1], ["acme/hp/a", "acme/hp/a"], ["acme/hp/2.5/a", "acme/hp/2.6/a"])
    return det


def _limited() -> OutOfRange:
    det = OutOfRange(capacity=4)
    det.set_limits([0, 1, 2, 3], lo=[-1.0, -np.inf, -2.0, 0.0], hi=[1.0, 1.5, np.inf, 3.0])
    return det


#: name -> (factory, module holding the kernel, kernel name)
DETECTORS: dict[str, tuple[Callable[[], Any], str | None, str | None]] = {
    "robust_z": (lambda: RobustZ(capacity=2, warmup=10, half_life=50.0),
                 "core.detect.robust_z", "robust_z_update"),
    "seasonal": (lambda: Seasonal(capacity=2, bins=8), "core.detect.seasonal", "seasonal_update"),
    "transition": (lambda: Transition(capacity=2, bins=6), "core.detect.transition",
                   "transition_update"),
    "rate_of_change": (lambda: RateOfChange(capacity=2, warmup=10), "core.detect.rate",
                       "rate_update"),
    "drift": (lambda: Drift(capacity=2, warmup=10), "core.detect.drift", "drift_update"),
    "multivariate": (lambda: Multivariate(capacity=2, warmup=10), "core.detect.multivariate",
                     "multivariate_update"),
    "stuck": (lambda: Stuck(capacity=2, min_run=3, min_changes=5), "core.detect.stuck",
              "stuck_update"),
    "dropout": (lambda: Dropout(capacity=2, warmup=5, min_gap=2), "core.detect.dropout",
                "dropout_update"),
    "out_of_range": (_limited, "core.detect.out_of_range", "out_of_range_update"),
    "extreme": (lambda: Extreme(capacity=2, warmup=10, half_life=50.0), "core.detect.extreme",
                "extreme_update"),
    "likelihood": (lambda: AnomalyLikelihood(capacity=2, window=4, warmup=10),
                   "core.detect.likelihood", "likelihood_update"),
    "onset": (lambda: Onset(capacity=2, fire=0.5, quiet=3), "core.detect.onset",
              "onset_update"),
    "onset_ranked": (lambda: Onset(capacity=2, fire=0.3, quiet=2, rank_memory=3),
                     "core.detect.onset", "onset_update"),
    # quiet period in seconds: 1,200 s = 2 rows of _times' 600 s
    "onset_timed": (lambda: TimedOnset(capacity=2, fire=0.3, quiet=5, quiet_s=1200.0,
                                       quiet_min=1, rank_memory=3),
                    "core.detect.onset", "onset_timed_update"),
    "regression": (lambda: Regression(capacity=2, warmup=20), "core.detect.regression",
                   "regression_update"),
    "subspace": (lambda: Subspace(capacity=2, warmup=20), "core.detect.subspace",
                 "subspace_update"),
    # a narrow device (fewer fields than joint_min_fields): only its fields' falling steps
    "subspace_narrow": (lambda: Subspace(capacity=2, warmup=20, joint_min_fields=9),
                        "core.detect.subspace", "subspace_narrow_update"),
    "field_level": (lambda: FieldLevel(capacity=2, hold=3), "core.detect.field_level",
                    "field_level_update"),
    "peer": (_peers, "core.detect.peer", "peer_update"),
    # small windows (2 samples a point, 4 points) so 200 samples hold ~100 windows
    "window_shape": (lambda: WindowShape(capacity=2, step=2, width=4, categories=6,
                                         range_learn=20, learn=40, vigilance=0.9, z=1.0),
                     "core.detect.window_shape", "window_shape_update"),
    # the graded score every sample (the raw path's input) instead of novel windows only
    "window_shape_graded": (lambda: WindowShape(capacity=2, step=2, width=4, categories=6,
                                                range_learn=20, learn=40, z=1.0, hold=True),
                            "core.detect.window_shape", "window_shape_update"),
    # state only (each series' first time step): scores 0, learns from its first two rows
    "cadence": (lambda: Cadence(capacity=2), "core.detect.cadence", "cadence_update"),
    "ensemble": (lambda: Ensemble(), None, None),
    "ensemble_window_shape": (lambda: Ensemble(DetectorConfig(window_shape_weight=0.5)), None,
                              None),
    "fleet_ensemble": (lambda: Ensemble(DetectorConfig(regression_warmup=20)), None,
                       None),
}
IDS = list(DETECTORS)
SLOTS = np.array([0, 1], dtype=np.int64)

values = arrays(np.float64, (40, 2), elements=st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=32),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0])))
settings_ = settings(max_examples=12, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _times(n: int, start: float = 0.0) -> np.ndarray:
    return start + 600.0 * np.arange(n, dtype=np.float64)


def _data(seed: int, n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 2.0, (n, 2))
    x[n // 2, 0] += 40.0
    x[n // 3, 1] = np.nan
    return x


@pytest.mark.parametrize("name", IDS)
@settings_
@given(x=values)
def test_scores_finite_and_in_unit_interval(name: str, x: np.ndarray) -> None:
    det = DETECTORS[name][0]()
    with np.errstate(all="ignore"):
        s = det.update(SLOTS, x, _times(x.shape[0]))
    assert s.shape == x.shape
    assert np.all(np.isfinite(s)) and s.min() >= 0.0 and s.max() <= 1.0


@pytest.mark.parametrize("name", IDS)
def test_deterministic(name: str) -> None:
    x = _data(1)
    a = DETECTORS[name][0]().update(SLOTS, x, _times(x.shape[0]))
    b = DETECTORS[name][0]().update(SLOTS, x, _times(x.shape[0]))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", IDS)
def test_state_round_trip(name: str) -> None:
    x, t = _data(2), _times(200)
    whole = DETECTORS[name][0]()
    expected = whole.update(SLOTS, x, t)
    first = DETECTORS[name][0]()
    head = first.update(SLOTS, x[:120], t[:120])
    restarted = DETECTORS[name][0]()
    restarted.load_state(first.state())
    tail = restarted.update(SLOTS, x[120:], t[120:])
    np.testing.assert_array_equal(np.vstack([head, tail]), expected)


@pytest.mark.parametrize("name", IDS)
def test_non_finite_samples_do_not_poison_state(name: str) -> None:
    x, t = _data(3), _times(200)
    x[50:55, 0] = np.nan
    x[60, 1] = np.inf
    x[61, 1] = -np.inf
    det = DETECTORS[name][0]()
    det.update(SLOTS, x, t)
    for key, arr in det.state().items():
        if arr.dtype.kind == "f":
            assert not np.isnan(arr).any(), key
    after = det.update(SLOTS, _data(4)[:50], _times(50, t[-1] + 600.0))
    assert np.all(np.isfinite(after))


@pytest.mark.parametrize("name", [n for n in IDS if DETECTORS[n][1]])
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_numba_kernel_agrees_with_python(name: str, seed: int) -> None:
    factory, module_name, kernel_name = DETECTORS[name]
    assert module_name and kernel_name
    x, t = _data(seed, n=60), _times(60)
    compiled = factory().update(SLOTS, x, t)
    module = importlib.import_module(module_name)
    with mock.patch.object(module, kernel_name, getattr(module, kernel_name).py_func):
        plain = factory().update(SLOTS, x, t)
    np.testing.assert_allclose(compiled, plain, rtol=1e-9, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(x=values)
def test_robust_z_matches_vectorised_numpy(x: np.ndarray) -> None:
    states = [(np.zeros(2), np.zeros(2), np.zeros(2, dtype=np.int64)) for _ in range(2)]
    # two blocks: the second starts warm, so the kernel's steady-state loop runs too
    for block in (x, x[::-1]):
        out_nb, out_np = np.zeros(block.shape), np.zeros(block.shape)
        robust_z_update(*states[0], SLOTS, block, out_nb, 0.2, 5, 3.0, 2.0)
        robust_z_reference(*states[1], SLOTS, block, out_np, 0.2, 5, 3.0, 2.0)
        # the kernel may fuse multiply-adds and use reciprocals: equal up to rounding
        np.testing.assert_allclose(out_nb, out_np, rtol=1e-7, atol=1e-9)
        for a, b in zip(states[0], states[1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


#: detectors without a learning period, and why
NO_WARM_UP = {
    "out_of_range": "configured limits have no learning period",
    "onset": "the onset filter has no learning period",
    "onset_ranked": "the onset filter has no learning period",
    "onset_timed": "the onset filter has no learning period",
    "field_level": "calibrates likelihood scores, whose stage has the learning period",
    "transition": "scores every move from the second sample on (a jump to an unseen level is "
                  "the news it reports)",
}


@pytest.mark.parametrize("name", IDS)
def test_warm_up_raises_no_alarm(name: str) -> None:
    if name in NO_WARM_UP:
        pytest.skip(NO_WARM_UP[name])
    det = DETECTORS[name][0]()
    x = np.full((5, 2), 1e9)
    x[0] = 0.0
    assert det.update(SLOTS, x, _times(5)).max() < 0.5


_SHAPE_ARRAYS = ("count", "n_acc", "acc", "ma", "lo", "hi", "ring", "n_ds", "calm", "cats",
                 "n_cat", "used")


def _shape_kernel(kernel: Callable[..., None], det: WindowShape, x: np.ndarray,
                  hold: bool) -> np.ndarray:
    """One call of a window shape kernel over ``det``'s arrays (step 2, learn 60, mask 2)."""
    a = det._arrays
    out = np.zeros(x.shape)
    kernel(*(a[n] for n in _SHAPE_ARRAYS), SLOTS, x, out, 2, 30, 60, 0.9, 0.5, 0.1, 0.1, 1.0, 2,
           a["med"], 0.075, a["match_stats"], 1.0, a["held"], hold)
    return out


@settings(max_examples=10, deadline=None)
@given(x=values, seed=st.integers(0, 2**16), hold=st.booleans())
def test_window_shape_matches_numpy_reference(x: np.ndarray, seed: int, hold: bool) -> None:
    """The kernel and the plain-numpy reference agree, on a noisy sine and on hypothesis data."""
    rng = np.random.default_rng(seed)
    sine = np.sin(np.arange(300.0) / 8.0)[:, None] + rng.normal(0.0, 0.1, (300, 2))
    sine[200:206, 1] = 3.0
    for block in (sine, x):
        det = WindowShape(capacity=2, step=2, width=4, categories=5)
        ref = WindowShape(capacity=2, step=2, width=4, categories=5)
        out_nb, out_np = np.zeros(block.shape), np.zeros(block.shape)
        with np.errstate(all="ignore"):
            for k in range(0, block.shape[0], 37):  # cut into blocks: state carries over
                sl = slice(k, k + 37)
                out_nb[sl] = _shape_kernel(window_shape_update, det,
                                           np.asfortranarray(block[sl]), hold)
                out_np[sl] = _shape_kernel(window_shape_reference, ref, block[sl], hold)
        np.testing.assert_allclose(out_nb, out_np, rtol=1e-9, atol=1e-12)
        if block is sine:  # the comparison covered scored windows, not only zeros
            assert np.count_nonzero(out_nb) > 0
        for name, arr in det._arrays.items():
            np.testing.assert_allclose(arr, ref._arrays[name], rtol=1e-9, atol=1e-12,
                                       err_msg=name)


def test_window_shape_flags_an_unseen_stretch_once() -> None:
    """A sine that stops at its top for a while scores there once; the sine never scores."""
    rng = np.random.default_rng(4)
    x = np.sin(np.arange(3000) * 2 * np.pi / 100)[:, None] + rng.normal(0.0, 0.05, (3000, 1))
    x[2500:2540, 0] = 1.0
    s = WindowShape(capacity=1, learn=600).update([0], x)[:, 0]
    assert s[2500:2560].max() >= 0.5
    assert np.count_nonzero(s) == 1


def test_spike_scores_high_on_every_z_type_detector() -> None:
    for det in (RobustZ(capacity=2, warmup=10), RateOfChange(capacity=2, warmup=10)):
        x = _data(5)
        s = det.update(SLOTS, x, _times(200))
        assert s[100, 0] > 0.9


def test_window_shape_raw_mode_names_its_findings() -> None:
    """With the graded score among the raw scores, a finding it drove is named after it."""
    rng = np.random.default_rng(4)
    n = 3000
    t = 300.0 * np.arange(n, dtype=np.float64)
    x = np.sin(np.arange(n) * 2 * np.pi / 100)[:, None] + rng.normal(0.0, 0.05, (n, 1))
    x[2500:2540, 0] = 1.0
    # onset findings (no device models, no level): the one statistical raw score is its own
    det = Ensemble(DetectorConfig.nab_reference(
        window_shape_raw_weight=1.0, level_weight=0.0, seasonal_weight=0.0,
        transition_weight=0.0, multivariate_weight=0.0))
    named = []
    for k in range(0, n, 100):
        det.update([0], x[k:k + 100], t[k:k + 100])
        assert "window_shape" in det.last_components()
        named += [f.detector for f in det.last_findings()]
    assert "window_shape" in named


@settings(max_examples=25, deadline=None)
@given(times=arrays(np.float64, 6, elements=st.one_of(
           st.floats(0.0, 1e6, allow_nan=False), st.sampled_from([np.nan, np.inf, 5.0]))),
       cut=st.integers(0, 6), fresh=st.lists(st.booleans(), min_size=3, max_size=3))
def test_cadence_matches_numpy_reference(times: np.ndarray, cut: int, fresh: list[bool]) -> None:
    # three slots, some already past their first row; the times in two blocks cut anywhere
    slots = np.array([0, 1, 2], dtype=np.int64)
    started = ~np.array(fresh)
    first_t, rows, step = np.where(started, 100.0, 0.0), started.astype(np.int64), np.zeros(3)
    ref_t, ref_rows, ref_step = first_t.copy(), rows.copy(), step.copy()
    for block in (times[:cut], times[cut:]):
        cadence_update(first_t, rows, step, slots, np.ascontiguousarray(block))
        cadence_reference(ref_t, ref_rows, ref_step, slots, block)
    for got, want in ((first_t, ref_t), (rows, ref_rows), (step, ref_step)):
        np.testing.assert_array_equal(got, want)
