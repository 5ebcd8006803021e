"""The drift score's false-alarm rate (core.detect.peer_drift): a healthy pool of any size,
among a rest of any larger size, whose devices each cross the bar now and then (independently,
in up to 1 % of buckets, either way), is flagged in no more buckets than its target
``alpha`` (with the slack of a finite sample)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.detect.peer_drift import POOLS, judge_pools

ALPHA = 0.01
BUCKETS = 2000


@settings(max_examples=25, deadline=None)
@given(n_in=st.integers(3, 120), extra=st.integers(0, 240), q=st.floats(0.0005, 0.01),
       seed=st.integers(0, 2**32 - 1))
def test_a_healthy_pool_of_any_size_is_flagged_at_most_at_its_target_rate(
        n_in: int, extra: int, q: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2 * n_in + extra                                      # the rest at least as large
    ref = np.ones(n, dtype=np.int64)
    pool = np.zeros((n, POOLS), dtype=np.int64)
    pool[:, 1] = np.where(np.arange(n) < n_in, 17, 10)
    score = np.zeros(n)
    alarms = 0
    for h in range(BUCKETS):
        zbucket = np.full(n, h, dtype=np.int64)
        zs = rng.normal(0.0, 1.0, n).clip(-3.9, 3.9)          # below the bar…
        over = rng.random(n) < q                              # …but now and then over it
        zs[over] = rng.choice([-6.0, 6.0], int(over.sum()))
        judge_pools(h, ref, pool, zbucket, zs, score, 4.0, 2, ALPHA, 3)
        alarms += bool(score[:n_in].any())
    # four standard errors of a rate of ALPHA over BUCKETS buckets
    assert alarms / BUCKETS <= ALPHA + 4.0 * math.sqrt(ALPHA * (1 - ALPHA) / BUCKETS)
