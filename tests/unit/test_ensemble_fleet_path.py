"""The ensemble's fleet path gives the very bits of its general path.

``Ensemble._update_fleet`` is an optimisation of ``Ensemble.update`` for a configuration that
keeps only the device models (the per-field detectors' weights at 0; it skips the stages that
configuration zeroes and checks capacity once per block). Two ensembles see the
same stream of many devices: steps and drifts, missing readings, limits, a firmware rebaseline,
and new devices past the initial capacity; one is forced onto the general path. Scores, levels,
findings and the learned state must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import DetectorConfig, make_detector
from core.detect.ensemble import Ensemble


def _pair(**overrides: object) -> tuple[Ensemble, Ensemble]:
    cfg = DetectorConfig(capacity=4, warmup=200, regression_warmup=200, quiet=50,
                         level_quiet=50, level_weight=0.0, seasonal_weight=0.0,
                         transition_weight=0.0, extreme_weight=0.0, field_level_weight=0.0,
                         **overrides)
    fast, general = make_detector(cfg), make_detector(cfg)
    assert fast._fleet_only
    general._fleet_only = False
    return fast, general


def _same(a: np.ndarray | None, b: np.ndarray | None) -> None:
    assert a is not None and b is not None
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_fleet_path_matches_general_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fast, general = _pair()
    devices, k, block = 6, 4, 60
    base = rng.uniform(10, 50, (devices, k))
    mix = rng.normal(0, 1, (devices, k, k))
    lo, hi = np.full(k, 0.0), np.full(k, 80.0)
    fired = 0
    for det in (fast, general):
        det.range.set_limits(np.arange(k, dtype=np.int64), lo, hi)
    for step in range(40):
        for d in range(devices if step > 5 else 2):  # devices 2.. join later: capacity grows
            slots = np.arange(d * k, d * k + k, dtype=np.int64)
            t = (step * block + np.arange(block)) * 60.0
            drive = rng.normal(0, 1, (block, k))
            x = base[d] + drive @ mix[d] + 0.3 * np.sin(t / 3600.0)[:, None]
            if d == 1 and step >= 25:
                x[:, 0] += 12.0  # a fault: one field steps away from what the others predict
            if d == 2 and step >= 20:
                x[:, 2] = 95.0  # beyond its limit (only device 0's limits are set: none)
            if d == 3 and step >= 22:
                x[:, 1] = x[0, 1]  # stuck
            x[rng.random(x.shape) < 0.03] = np.nan
            if d == 4 and step == 30:
                for det in (fast, general):
                    det.rebaseline(slots)
            a = fast.update(slots, x, t)
            b = general.update(slots, x, t)
            _same(a, b)
            _same(fast.last_level(), general.last_level())
            # repr: a finding on a missing reading holds value=nan, and nan != nan
            assert repr(fast.last_findings()) == repr(general.last_findings())
            fired += len(fast.last_findings())
    assert fired > 0  # the stream did exercise the findings
    sa, sb = fast.state(), general.state()
    assert sa.keys() == sb.keys()
    for name in sa:
        _same(sa[name], sb[name])


def test_other_profiles_keep_the_general_path() -> None:
    assert not make_detector(DetectorConfig())._fleet_only
    assert not make_detector(DetectorConfig(level_weight=1.0))._fleet_only
