"""Several devices of one batch drifting the same way, before each is unusual enough on its
own (issue 20): the peer detector's third score, ``peer_drift``.

A production batch with a weak part wears gradually: each device leaves its peers slowly, and
the device score (:mod:`core.detect.peer`) flags it only once it is far out (a smoothed
excess of ``2 · half_z`` spreads), a day or more after its onset. At a lower bar a device is
off its peers far sooner, but healthy devices cross such a bar now and then. What a healthy
fleet rarely does is put **several devices of one batch** over it at the same time, in the
same direction, while the rest of the product stays below it.

Every bucket the peer detector judged, series are pooled by a **reference** label (tenant,
product and field: the rest of the product's devices, each already measured against peers
under the same conditions) and, inside it, by up to :data:`POOLS` **pool** labels (a
production batch, a firmware version; a pool spans the peer groups of models and regions).
For each pool of at least ``min_cohort`` judged members, with at least as many others in the
reference, and each direction:

- ``hits`` = its members whose smoothed excess is at least ``bar`` spreads that way, and
  ``rest`` = the others' in the reference;
- the pool is **drifting** when ``hits ≥ min_hits`` and so many hits among its ``n`` are
  improbable at the rest's rate (counted one more, so that a quiet rest is no licence):
  ``P(Binomial(n, (rest + 1) / (n_rest + 1)) ≥ hits) ≤ alpha``. Healthy pools of any size
  whose devices each cross the bar now and then (1 % of buckets) are drifting in at most
  about ``alpha`` of their buckets (``tests/property/test_peer_drift.py``).

A series' **drift score** is 1 while it is one of the hits of a drifting pool, else 0 (its
onset is a ``peer_drift`` event; a fleet incident needs ``[incidents] min_devices`` of one
cohort flagged within its window). ``[peer] drift_*`` (core.detect.peer_config) holds the
choices and which seeds they were tuned on.

>>> import numpy as np
>>> n = 40
>>> ref = np.ones(n, dtype=np.int64)
>>> pool = np.zeros((n, POOLS), dtype=np.int64)
>>> pool[:, 0] = np.where(np.arange(n) < 12, 17, 10)       # a batch of 12 among 40
>>> zs = np.zeros(n)
>>> zs[[0, 3, 5, 7]] = [5.5, 6.0, 5.2, 5.1]                 # four of the batch well off
>>> zs[30] = -7.0                                           # one of the others, the other way
>>> judged, score = np.zeros(n, dtype=np.int64), np.zeros(n)
>>> judge_pools(0, ref, pool, judged, zs, score, 5.0, 3, 0.001, 3)
>>> np.flatnonzero(score).tolist()
[0, 3, 5, 7]
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["POOLS", "binomial_tail", "drift_reference", "judge_pools"]

#: pool labels per series (its firmware, its batch)
POOLS = 2


@numba.njit(cache=True, nogil=True)
def binomial_tail(n: int, k: int, p: float) -> float:
    """``P(X ≥ k)`` for ``X ~ Binomial(n, p)``.

    >>> round(binomial_tail(23, 3, 1 / 61), 4)
    0.0061
    """
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    total = 0.0
    base = math.lgamma(n + 1.0)
    for x in range(k, n + 1):
        total += math.exp(base - math.lgamma(x + 1.0) - math.lgamma(n - x + 1.0)
                          + x * math.log(p) + (n - x) * math.log1p(-p))
    return min(total, 1.0)


@numba.njit(cache=True, nogil=True)
def judge_pools(
    h: int, ref: NDArray[np.int64], pool: NDArray[np.int64], zbucket: NDArray[np.int64],
    zs: NDArray[np.float64], dscore: NDArray[np.float64], bar: float, min_hits: int,
    alpha: float, min_cohort: int,
) -> None:
    """Judge bucket ``h`` across every pool: the drift scores of the series judged at ``h``
    (``zbucket == h``) from their smoothed excesses ``zs``."""
    n_slots = ref.shape[0]
    count = 0
    for s in range(n_slots):
        if ref[s] != 0 and zbucket[s] == h:
            count += 1
    members = np.empty(count, dtype=np.int64)
    count = 0
    for s in range(n_slots):
        if ref[s] != 0 and zbucket[s] == h:
            members[count] = s
            count += 1
    order = members[np.argsort(ref[members], kind="mergesort")]
    a = 0
    while a < count:
        b = a
        while b < count and ref[order[b]] == ref[order[a]]:
            b += 1
        run = order[a:b]
        m = b - a
        up_all = 0
        down_all = 0
        for i in range(m):
            if zs[run[i]] >= bar:
                up_all += 1
            elif zs[run[i]] <= -bar:
                down_all += 1
        best = np.zeros(m)
        for p in range(pool.shape[1]):
            labels = np.empty(m, dtype=np.int64)
            for i in range(m):
                labels[i] = pool[run[i], p]
            by_pool = np.argsort(labels, kind="mergesort")
            c0 = 0
            while c0 < m:
                c1 = c0
                while c1 < m and labels[by_pool[c1]] == labels[by_pool[c0]]:
                    c1 += 1
                n_in = c1 - c0
                n_out = m - n_in
                if (labels[by_pool[c0]] != 0 and n_in >= min_cohort
                        and n_out >= max(n_in, min_cohort)):
                    up = 0
                    down = 0
                    for i in range(c0, c1):
                        z = zs[run[by_pool[i]]]
                        if z >= bar:
                            up += 1
                        elif z <= -bar:
                            down += 1
                    for side in range(2):
                        hits = up if side == 0 else down
                        rest = (up_all if side == 0 else down_all) - hits
                        if (hits < min_hits or binomial_tail(
                                n_in, hits, (rest + 1.0) / (n_out + 1.0)) > alpha):
                            continue
                        for i in range(c0, c1):
                            z = zs[run[by_pool[i]]]
                            if (z >= bar) if side == 0 else (z <= -bar):
                                best[by_pool[i]] = 1.0
                c0 = c1
        for i in range(m):
            dscore[run[i]] = best[i]
        a = b


def drift_reference(
    h: int, ref: NDArray[np.int64], pool: NDArray[np.int64], zbucket: NDArray[np.int64],
    zs: NDArray[np.float64], dscore: NDArray[np.float64], bar: float, min_hits: int,
    alpha: float, min_cohort: int,
) -> None:
    """Plain numpy twin of :func:`judge_pools` (same arguments, ``dscore`` updated)."""
    judged = (ref != 0) & (zbucket == h)
    for r in np.unique(ref[judged]):
        run = np.flatnonzero(judged & (ref == r))
        best = np.zeros(run.size)
        for sign in (1.0, -1.0):
            hit = sign * zs[run] >= bar
            for p in range(pool.shape[1]):
                for label in np.unique(pool[run, p]):
                    inside = pool[run, p] == label
                    n_in, n_out = int(inside.sum()), int((~inside).sum())
                    if label == 0 or n_in < min_cohort or n_out < max(n_in, min_cohort):
                        continue
                    hits, rest = int((hit & inside).sum()), int((hit & ~inside).sum())
                    rate = (rest + 1.0) / (n_out + 1.0)
                    if hits >= min_hits and _tail(n_in, hits, rate) <= alpha:
                        best[hit & inside] = 1.0
        dscore[run] = best


def _tail(n: int, k: int, p: float) -> float:
    """``P(Binomial(n, p) ≥ k)`` by exact sums (the reference's own, not the kernel's)."""
    if p >= 1.0:
        return 1.0
    return float(sum(math.comb(n, x) * p**x * (1.0 - p) ** (n - x) for x in range(k, n + 1)))
