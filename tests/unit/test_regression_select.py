"""The regression's forward selection of predictors and the long average's release (issue 17).

The selection is a sweep of the covariance inside the numba refit; it is held to a plain
numpy forward selection (least squares on the chosen features, one feature at a time), and
its purpose is shown on a device whose one relation hides among wandering unrelated fields.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.detect.regression import FEATURES_PER_FIELD, Regression, _select


def _reference_picks(cov: np.ndarray, target: int, candidates: list[int],
                     share: float) -> list[int]:
    """Forward selection by refitting least squares from scratch at every step."""
    picked: list[int] = []
    total_left = cov[target, target]
    while len(picked) < len(candidates):
        best, best_left = -1, total_left
        for c in candidates:
            if c in picked:
                continue
            cols = [*picked, c]
            coef = np.linalg.solve(cov[np.ix_(cols, cols)], cov[cols, target])
            left = cov[target, target] - coef @ cov[cols, target]
            if left < best_left:
                best, best_left = c, left
        if best < 0 or total_left - best_left < share * total_left:
            break
        picked.append(best)
        total_left = best_left
    return picked


@pytest.mark.parametrize("share", [0.0, 0.02, 0.1, 0.3], ids=lambda s: f"share{s}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sweep_picks_what_refitting_from_scratch_picks(seed: int, share: float) -> None:
    rng = np.random.default_rng(seed)
    width = 12
    z = rng.normal(0.0, 1.0, (500, width)) @ rng.normal(0.0, 1.0, (width, width))
    cov = np.cov(z, rowvar=False)
    target = 0
    candidates = list(range(1, width))
    idx = np.zeros(width, dtype=np.int64)
    idx[:len(candidates)] = candidates
    scratch = np.zeros((width, width))
    n = _select(cov, idx, len(candidates), target, share, scratch, np.zeros(width),
                np.zeros(width), np.zeros(width, dtype=np.int64))
    assert idx[:n].tolist() == _reference_picks(cov, target, candidates, share)


def _pairs(n: int, seed: int) -> np.ndarray:
    """Field 1 follows field 0; six more fields wander on loads of their own (1 Hz rig)."""
    rng = np.random.default_rng(seed)
    loads = np.cumsum(rng.normal(0.0, 0.1, (n, 7)), axis=0)
    x = np.c_[loads[:, 0], 2.0 * loads[:, 0], loads[:, 1:]] + 10.0
    out: np.ndarray = x + rng.normal(0.0, 0.1, x.shape)
    return out


def test_a_relation_among_wandering_fields_is_fitted_on_its_partner_only() -> None:
    x = _pairs(1200, seed=4)
    det = Regression(capacity=8, warmup=400)
    det.update(np.arange(8), x[:400])
    beta = det._arrays["beta"][1]
    used = {int(o) // FEATURES_PER_FIELD for o in np.flatnonzero(beta)}
    assert used == {0}
    # and so the healthy rest of the pair, its load beyond the warm-up's range, stays quiet
    # (the fields without a partner are predicted by nothing: their levels are their own)
    levels = det.update(np.arange(8), x[400:])
    assert levels[:, :2].max() < 0.5
    every = Regression(capacity=8, warmup=400, select=0.0)
    every.update(np.arange(8), x[:400])
    assert len({int(o) // FEATURES_PER_FIELD
                for o in np.flatnonzero(every._arrays["beta"][1])}) == 7


@pytest.mark.parametrize(("release", "lets_go"), [(2.0, True), (0.0, False)])
def test_the_level_lets_go_when_the_relation_is_back(release: float, lets_go: bool) -> None:
    x = _pairs(1200, seed=5)
    x[600:900, 1] += 4.0  # about 14 residual sigmas off its partner for 300 rows
    det = Regression(capacity=8, warmup=400, release=release)
    levels = det.update(np.arange(8), x)
    assert levels[620:900, 1].min() >= 0.85
    assert bool(levels[930:1000, 1].max() < 0.5) is lets_go
