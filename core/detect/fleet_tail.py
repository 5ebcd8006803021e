"""The fleet path's stages after the device models, in one kernel call per block.

On the ensemble's fleet path (:meth:`core.detect.ensemble.Ensemble._update_fleet`) a block of
one device runs, after the regression and subspace stages, the rule detectors (stuck, dropout,
out of range), their onset filter, the level (the largest of the device models' levels and the
limits' score), the drift trend and the level's onset filter. Called one by one from Python,
these eight small kernels cost more in calls (argument checks, wrappers) than in arithmetic:
≈ 16 µs CPU per block of a five-field device at 100 samples a block (loaded box), where
:func:`fleet_tail`, the very same kernels in the same order on the same arrays in one call,
takes ≈ 9 µs. ``tests/unit/test_ensemble_fleet_path.py`` holds the fleet path to the general path's
bits.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect.drift import drift_update
from core.detect.dropout import dropout_update
from core.detect.onset import onset_update
from core.detect.out_of_range import out_of_range_update
from core.detect.stuck import stuck_update

__all__ = ["fleet_tail"]


@numba.njit(cache=True, nogil=True, inline="always")
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: the larger, NaN if either is NaN."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@numba.njit(cache=True, nogil=True)
def fleet_tail(
    slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64], has_t: bool,
    drop_has_t: bool,
    regression: NDArray[np.float64], regression_weight: float,
    subspace: NDArray[np.float64], subspace_weight: float, has_subspace: bool,
    # stuck
    st_last: NDArray[np.float64], st_run: NDArray[np.int64], st_longest: NDArray[np.int64],
    st_changes: NDArray[np.int64], st_factor: float, st_min_run: int, st_min_changes: int,
    stuck: NDArray[np.float64],
    # dropout
    do_missing: NDArray[np.int64], do_longest: NDArray[np.int64], do_count: NDArray[np.int64],
    do_last_t: NDArray[np.float64], do_interval: NDArray[np.float64], do_factor: float,
    do_min_gap: int, do_warmup: int, dropout: NDArray[np.float64],
    # out of range
    lo: NDArray[np.float64], hi: NDArray[np.float64], out_of_range: NDArray[np.float64],
    # the rules' onset filter
    ro_since: NDArray[np.int64], ro_calm: NDArray[np.int64], ro_bar: NDArray[np.float64],
    ro_past: NDArray[np.float64], ro_n_past: NDArray[np.int64], ro_fire: float, ro_quiet: int,
    ro_calm_scale: float, ro_boost: float, ro_bar_decay: float, ro_rearm: int,
    ro_prior: float, ro_ceiling: float, rule: NDArray[np.float64],
    rule_fired: NDArray[np.float64],
    # drift (its trend: the time to a limit)
    dr_mean: NDArray[np.float64], dr_spread: NDArray[np.float64], dr_count: NDArray[np.int64],
    dr_up: NDArray[np.float64], dr_down: NDArray[np.float64], dr_level: NDArray[np.float64],
    dr_slope: NDArray[np.float64], dr_last_t: NDArray[np.float64], dr_alpha: float,
    dr_fast: float, dr_warmup: int, dr_delta: float, dr_threshold: float, dr_trend_only: bool,
    drift: NDArray[np.float64],
    # the level's onset filter
    lo_since: NDArray[np.int64], lo_calm: NDArray[np.int64], lo_bar: NDArray[np.float64],
    lo_past: NDArray[np.float64], lo_n_past: NDArray[np.int64], lo_fire: float, lo_quiet: int,
    lo_calm_scale: float, lo_boost: float, lo_bar_decay: float, lo_rearm: int,
    lo_prior: float, lo_ceiling: float,
    level: NDArray[np.float64], level_fired: NDArray[np.float64], fired: NDArray[np.float64],
    final: NDArray[np.float64],
) -> bool:
    """Rules, their onsets, the level, the drift trend and the level's onsets of one block.

    Writes every stage's scores into its array, ``level`` (the caller keeps it), ``fired``
    (the level's or a rule's onset) and ``final`` (the rules' onsets: what ``update``
    returns on the fleet path); True when anything fired (there are findings to explain).
    ``np.maximum`` of the Python form is ``a if a >= b`` with NaN kept, as here.
    """
    n, k = x.shape
    no_t = np.zeros(n)
    stuck_update(st_last, st_run, st_longest, st_changes, slots, x, stuck, st_factor,
                 st_min_run, st_min_changes)
    dropout_update(do_missing, do_longest, do_count, do_last_t, do_interval, slots, x,
                   t if drop_has_t else no_t, dropout, drop_has_t, do_factor, do_min_gap,
                   do_warmup)
    out_of_range_update(lo, hi, slots, x, out_of_range)
    for j in range(k):  # the rules' score: their maximum (as _fold_max folds it)
        for i in range(n):
            a = 1.0 * stuck[i, j]
            v = 1.0 * dropout[i, j]
            a = a if a > v else v
            v = 1.0 * out_of_range[i, j]
            rule[i, j] = a if a > v else v
    onset_update(ro_since, ro_calm, slots, ro_bar, rule, rule_fired, ro_fire, ro_quiet,
                 ro_calm_scale, ro_boost, ro_bar_decay, ro_rearm, ro_past, ro_n_past,
                 ro_prior, ro_ceiling)
    for j in range(k):
        for i in range(n):
            lv = _maximum(regression_weight * regression[i, j], out_of_range[i, j])
            if has_subspace:
                lv = _maximum(lv, subspace_weight * subspace[i, j])
            level[i, j] = lv
    drift_update(dr_mean, dr_spread, dr_count, dr_up, dr_down, dr_level, dr_slope, dr_last_t,
                 slots, x, t if has_t else no_t, drift, has_t, dr_alpha, dr_fast, dr_warmup,
                 dr_delta, dr_threshold, dr_trend_only)
    onset_update(lo_since, lo_calm, slots, lo_bar, level, level_fired, lo_fire, lo_quiet,
                 lo_calm_scale, lo_boost, lo_bar_decay, lo_rearm, lo_past, lo_n_past,
                 lo_prior, lo_ceiling)
    any_fired = False
    for j in range(k):
        for i in range(n):
            f = _maximum(level_fired[i, j], rule_fired[i, j])
            fired[i, j] = f
            final[i, j] = _maximum(0.0, rule_fired[i, j])
            if f != 0.0:
                any_fired = True
    return any_fired
