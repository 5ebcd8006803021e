"""The narrow-device kernel of the subspace stage gives :func:`subspace_update`'s bits.

``Subspace._run`` scores a device of 2 to ``joint_min_fields - 1`` fields with
:func:`subspace_narrow_update` (fewer statistics, no copies); the general kernel with
``joint=False`` is the reference: every score and every piece of state must be equal, bit for
bit, over the warm-up and after it, with missing values, stuck and quantised fields, and
whichever memory order the caller's arrays have.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from numpy.typing import NDArray

from core.detect.subspace import Subspace, subspace_update


def _reference(det: Subspace, slots: NDArray[np.int64], x: NDArray[np.float64],
               t: NDArray[np.float64]) -> NDArray[np.float64]:
    """The general kernel on ``det``'s state (``det`` learns, as ``_run`` would)."""
    a = det._arrays
    out = np.empty(x.shape)
    subspace_update(a["count"], a["mean"], a["cov"], a["basis"], a["lam"], a["sd"],
                    a["ncomp"], a["prev"], a["ew"], a["cal_m"], a["cal_v"], a["ncal"],
                    a["interval"], a["last_t"], a["level"], a["share"], slots,
                    np.ascontiguousarray(x), t, True, out, det.scales, det.alpha, det.alpha_cal,
                    det.warmup, det.refit, det.var_frac, det.target, det.field_level, False,
                    det.sd_floor)
    return out


def _fleet(seed: int, n: int, k: int) -> NDArray[np.float64]:
    """A small device: a shared load, a quantised field, a field that sticks, some gaps."""
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 40.0) + rng.normal(0.0, 0.2, n)
    x = load[:, None] * rng.uniform(0.5, 2.0, k) + rng.normal(0.0, 0.3, (n, k))
    x[:, 0] = np.round(x[:, 0])                         # quantised
    x[n // 2: n // 2 + 80, k - 1] = x[n // 2, k - 1]    # stuck for a while
    x[rng.random((n, k)) < 0.01] = np.nan               # missing readings
    return x


@pytest.mark.parametrize("k", [2, 5, 8])
@pytest.mark.parametrize("field_level", [False, True])
@pytest.mark.parametrize("order", ["C", "F"])
def test_narrow_kernel_matches_general_kernel(k: int, field_level: bool,
                                             order: Literal["C", "F"]) -> None:
    fast = Subspace(capacity=2 * k, warmup=120, joint_min_fields=9, field_level=field_level)
    ref = Subspace(capacity=2 * k, warmup=120, joint_min_fields=9, field_level=field_level)
    t_all = 60.0 * np.arange(1200, dtype=np.float64)
    for dev, seed in enumerate((3, 4)):
        slots = np.arange(dev * k, (dev + 1) * k, dtype=np.int64)
        x_all = _fleet(seed, 1200, k)
        x_all[900:, 1] = x_all[899, 1]  # a field that stops moving: the narrow path's fault
        for lo in range(0, 1200, 97):  # blocks of varying length across the warm-up
            x = np.asarray(x_all[lo:lo + 97], order=order)
            t = t_all[lo:lo + 97]
            got = np.empty(x.shape, order=order)
            fast._run(slots, x, t, got)
            want = _reference(ref, slots, x, t)
            np.testing.assert_array_equal(got, want)
    for name, arr in ref._arrays.items():
        np.testing.assert_array_equal(fast._arrays[name], arr, err_msg=name)
    assert np.any(got > 0.85)  # the stopped field was raised: the comparison saw scores


def test_narrow_kernel_scores_the_falling_step() -> None:
    """The fast path is the one taken, and it still raises a field that stops moving."""
    det = Subspace(capacity=4, warmup=200, joint_min_fields=9, field_level=False)
    x = _fleet(7, 1000, 4)
    x[~np.isfinite(x)] = 0.0
    x[800:, 2] = x[799, 2]
    s = det.update(np.arange(4), x, 60.0 * np.arange(1000, dtype=np.float64))
    assert s[:200].max() == 0.0
    assert s[810:, 2].max() > 0.85 and s[300:480].max() < 0.85  # (field 3 sticks at 500)
    assert det._arrays["ncomp"].max() == 0  # no subspace was fitted


def test_a_fitted_device_goes_to_the_general_kernel() -> None:
    """State with a fitted subspace (never made by the narrow path) is scored as before."""
    x = _fleet(9, 400, 3)
    fast = Subspace(capacity=3, warmup=100, joint_min_fields=9)
    ref = Subspace(capacity=3, warmup=100, joint_min_fields=9)
    slots = np.arange(3, dtype=np.int64)
    t = 60.0 * np.arange(400, dtype=np.float64)
    for det in (fast, ref):
        det._ensure(slots)
        det._arrays["ncomp"][0] = 2
        det._arrays["basis"][:3, :2] = np.eye(3)[:, :2]
        det._arrays["lam"][:3] = 1.0
        det._arrays["sd"][:3] = 1.0
    got = np.empty(x.shape)
    fast._run(slots, x, t, got)
    np.testing.assert_array_equal(got, _reference(ref, slots, x, t))
