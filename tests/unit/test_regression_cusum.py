"""The regression's CUSUM of a sustained relation break (``regression_cusum_k``/``_h``).

A field that leaves its partner by a few residual sigmas for hundreds of samples stays below
the short average's bar; the CUSUM of the short average (in its spreads) catches it, holds it
while it lasts, and lets go once the relation is back. The kernel agrees with its plain-Python
run, and a stream cut in the middle of a break (state saved and restored) scores the same.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from core.detect import regression as regression_module
from core.detect.regression import Regression

WARMUP, START, STOP, N = 300, 400, 600, 800
SLOTS = [0, 1, 2]


def _pair(seed: int, shift: float = 0.0) -> np.ndarray:
    """Two fields on one wandering load, a third on its own; field 1 shifted over the break."""
    rng = np.random.default_rng(seed)
    load = np.cumsum(rng.normal(0.0, 0.1, N))
    x = np.c_[load, 2.0 * load + 1.0, rng.normal(0.0, 1.0, N)] + rng.normal(0.0, 0.1, (N, 3))
    x[START:STOP, 1] += shift * 0.1 * np.sqrt(5.0)  # the residual sigma of field 1 given field 0
    return x


def _det(**kw: float) -> Regression:
    return Regression(capacity=3, warmup=WARMUP, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sustained_five_sigma_break_is_caught_held_and_released(seed: int) -> None:
    x = _pair(seed, shift=5.0)
    # the pair's level: field 0 (predicted from field 1 with the smaller residual) or field 1
    with_cusum = _det().update(SLOTS, x)[:, :2].max(axis=1)
    without = _det(cusum_h=0.0).update(SLOTS, x)[:, :2].max(axis=1)
    assert with_cusum[WARMUP:START].max() < 0.5
    first = int(np.argmax(with_cusum[START:STOP] >= 0.85))
    assert with_cusum[START + first] >= 0.85 and first <= 25
    assert with_cusum[START + first:STOP].min() >= 0.5            # held while it lasts
    assert with_cusum[STOP + 40:].max() < 0.5                     # and released after
    assert without[START:STOP].mean() < with_cusum[START:STOP].mean()


def test_one_wild_reading_does_not_raise_the_cusum() -> None:
    x = _pair(3)
    x[START, 1] += 50.0
    det = _det()
    det.update(SLOTS, x[:START + 1])
    state = det.state()
    assert max(state["cusum_hi"].max(), state["cusum_lo"].max()) < det.cusum_h
    after = det.update(SLOTS, x[START + 1:])
    # the short average's own jump lasts a few samples; the rules' 10-sample hold never sees it
    assert (after >= 0.85).sum(axis=0).max() < 5
    state = det.state()
    assert max(state["cusum_hi"].max(), state["cusum_lo"].max()) < det.cusum_h


def test_kernel_agrees_with_its_python_run_through_a_break() -> None:
    x = _pair(4, shift=6.0)
    compiled = _det().update(SLOTS, x)
    with mock.patch.object(regression_module, "regression_update",
                           regression_module.regression_update.py_func):
        plain = _det().update(SLOTS, x)
    np.testing.assert_allclose(compiled, plain, rtol=1e-9, atol=1e-12)
    assert compiled[START:STOP, :2].max() >= 0.85                 # the CUSUM path ran


@pytest.mark.parametrize("cut", [START + 5, START + 100, STOP + 3])
def test_cut_and_restore_in_a_break_scores_the_same(cut: int) -> None:
    x = _pair(5, shift=5.0)
    whole = _det().update(SLOTS, x)
    first = _det()
    head = first.update(SLOTS, x[:cut])
    cusum = first.state()["cusum_hi"][:2].sum() + first.state()["cusum_lo"][:2].sum()
    assert cusum > 0.0 if START + 50 < cut < STOP else True
    restored = _det()
    restored.load_state(first.state())
    tail = restored.update(SLOTS, x[cut:])
    np.testing.assert_array_equal(np.vstack([head, tail]), whole)


def test_a_residual_that_wanders_slowly_moves_the_base_not_the_cusum() -> None:
    # field 1 drifts off its relation by 6 residual sigmas over 4,000 samples and back (a
    # motor's temperature with the weather, which no other field measures)
    rng = np.random.default_rng(6)
    n = 8300
    load = np.sin(np.arange(n) / 40.0) + rng.normal(0.0, 0.3, n)  # within the warm-up's range
    x = np.c_[load, 2.0 * load + 1.0, rng.normal(0.0, 1.0, n)] + rng.normal(0.0, 0.1, (n, 3))
    x[300:, 1] += 6.0 * 0.1 * np.sqrt(5.0) * np.sin(np.linspace(0.0, np.pi, n - 300))
    det, worst = _det(), 0.0
    for a in range(0, n, 50):
        det.update(SLOTS, x[a:a + 50])
        state = det.state()
        worst = max(worst, state["cusum_hi"].max(), state["cusum_lo"].max())
    assert worst < det.cusum_h
    assert abs(det.state()["cusum_base"][:2]).max() > 0.0
