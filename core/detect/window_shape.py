"""Window shape novelty: a recent stretch of the series unlike every stretch learned (ARTime-like).

The idea of ARTime (adaptive resonance theory on time series; the public NAB detector): summarise
a sliding window as a feature vector, cluster those vectors online with a vigilance threshold
(fuzzy ART), and call a window anomalous when it fits no learned category. Here, per series:

- every ``step`` samples one **down-sampled point**: the block's extreme (the sample furthest
  from a running average of block means, so a spike survives the down-sampling) when it lies
  more than ``spike`` of the learned range from the block's mean, else the block's mean; a point
  within ``chomp`` of the range from a streaming median of the points is that median (noise
  makes no shape);
- the **features** of the last ``width`` points: their levels, normalised by the range the
  series showed in its first ``range_learn`` samples (with ``margin`` of that range either side
  before clipping to [0, 1]), and their shape, min-max normalised within the window (by at least
  ``shape_floor`` of the range, so a flat noisy window stays flat);
- **fuzzy ART** over the complement-coded features (categories are boxes ``[a, b]`` stored as
  ``[a, 1 − b]``): the match of a category is ``|I ∧ w| / |I|``; the category with the largest
  choice ``|I ∧ w| / (α + |w|)`` among those matching at least ``vigilance`` learns the window
  (``w ← β (I ∧ w) + (1 − β) w``); when none matches, a new category is the window itself (when
  ``categories`` are all taken, it replaces the one that resonated least recently);
- the **bar**: a window is novel when its best match ``A`` is ``z`` spreads below the series'
  running mean of best matches, and below ``vigilance`` (a fixed vigilance alone calls most
  windows of a noisy series new: sliding windows of noise are all different);
- the **score** ``min(1, ½ (1 − A) / (1 − bar))`` (≥ ½ for a novel window), once the series is
  ``learn`` samples old: by default only on a novel window at least ``mask`` points after the
  last novel one, every other sample 0; with ``hold`` on every window, held until the next (a
  graded raw score for the ensemble's likelihood stage).

Missing samples (NaN/Inf) score 0 and teach nothing. ``window_shape_reference`` is the same
algorithm in plain numpy (vectorised over categories); the conformance suite holds the kernel to
it.

>>> import numpy as np
>>> rng = np.random.default_rng(4)
>>> det = WindowShape(capacity=1, learn=600)
>>> x = np.sin(np.arange(3000) * 2 * np.pi / 100)[:, None] + rng.normal(0.0, 0.05, (3000, 1))
>>> x[2500:2540, 0] = 1.0                                    # the sine stops at its top
>>> s = det.update([0], x)
>>> np.flatnonzero(s[:, 0] > 0).tolist(), bool(s[2539, 0] > 0.5)   # one window, once
([2539], True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["WindowShape", "window_shape_reference", "window_shape_update"]

#: ART's choice parameter (a small tie-break towards the smaller box)
_ALPHA = 1e-3

#: step of the streaming median of the down-sampled points, as a share of the learned range
_MED_RATE = 0.02

#: smallest weight of a window's best match in its series' running mean and variance of them
_STATS_ALPHA = 0.002


@numba.njit(cache=True, nogil=True, error_model="numpy")
def window_shape_update(
    count: NDArray[np.int64], n_acc: NDArray[np.int64], acc: NDArray[np.float64],
    ma: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64],
    ring: NDArray[np.float64], n_ds: NDArray[np.int64], calm: NDArray[np.int64],
    cats: NDArray[np.float64], n_cat: NDArray[np.int64], used: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64], step: int,
    range_learn: int, learn: int, vigilance: float, margin: float, spike: float,
    shape_floor: float, beta: float, mask: int, med: NDArray[np.float64], chomp: float,
    match_stats: NDArray[np.float64], z: float, held: NDArray[np.float64], hold: bool,
) -> None:
    """Score then learn ``x`` (ticks × columns); scores into ``out``.

    ``acc[s]`` holds the open block's sum, maximum and minimum; ``ring[s]`` the last ``width``
    down-sampled points; ``cats[s]`` (categories × 4·width) the complement-coded boxes.
    """
    n_ticks, n_cols = x.shape
    width = ring.shape[1]
    dim = 2 * width
    n_max = cats.shape[1]
    feat = np.empty(2 * dim)
    for j in range(n_cols):
        s = slots[j]
        for i in range(n_ticks):
            v = x[i, j]
            out[i, j] = 0.0
            if not math.isfinite(v):
                continue
            if hold:
                out[i, j] = held[s]
            c = count[s]
            if c == 0 or c < range_learn:  # the range the features are normalised by
                lo[s] = v if c == 0 else min(lo[s], v)
                hi[s] = v if c == 0 else max(hi[s], v)
            count[s] = c + 1
            if n_acc[s] == 0:
                acc[s, 0] = v
                acc[s, 1] = v
                acc[s, 2] = v
            else:
                acc[s, 0] += v
                acc[s, 1] = max(acc[s, 1], v)
                acc[s, 2] = min(acc[s, 2], v)
            n_acc[s] += 1
            if n_acc[s] < step:
                continue
            # one down-sampled point: the block's extreme if it stands out, else its mean
            mean = acc[s, 0] / step
            n_acc[s] = 0
            ma[s] = mean if n_ds[s] == 0 else 0.5 * (ma[s] + mean)
            ext = acc[s, 1] if abs(acc[s, 1] - ma[s]) >= abs(acc[s, 2] - ma[s]) else acc[s, 2]
            rng = hi[s] - lo[s]
            point = ext if abs(ext - mean) > spike * rng else mean
            # a streaming median of the points; a point near it is it (noise makes no shape)
            m0 = point if n_ds[s] == 0 else med[s]
            sign = 1.0 if point > m0 else (-1.0 if point < m0 else 0.0)
            med[s] = m0 + _MED_RATE * rng * sign
            if abs(point - m0) < chomp * rng:
                point = m0
            ring[s, n_ds[s] % width] = point
            n_ds[s] += 1
            if n_ds[s] < width:
                continue
            # features: levels against the learned range, then the shape within the window
            w_lo = math.inf
            w_hi = -math.inf
            for k in range(width):
                p = ring[s, (n_ds[s] + k) % width]  # oldest first
                w_lo = min(w_lo, p)
                w_hi = max(w_hi, p)
                u = (p - lo[s]) / rng if rng > 0.0 else 0.5
                feat[k] = min(max((u + margin) / (1.0 + 2.0 * margin), 0.0), 1.0)
            span = max(w_hi - w_lo, shape_floor * rng)
            for k in range(width):
                p = ring[s, (n_ds[s] + k) % width]
                feat[width + k] = (p - w_lo) / span if span > 0.0 else 0.0
            for k in range(dim):
                feat[dim + k] = 1.0 - feat[k]
            # fuzzy ART: the best resonant category learns; none → a new category
            best = -1
            best_choice = -1.0
            best_match = -1.0
            for q in range(n_cat[s]):
                m = 0.0
                size = 0.0
                for k in range(2 * dim):
                    w = cats[s, q, k]
                    m += min(feat[k], w)
                    size += w
                match = m / dim
                best_match = max(best_match, match)
                if match >= vigilance:
                    choice = m / (_ALPHA + size)
                    if choice > best_choice:
                        best_choice = choice
                        best = q
            # the series' own bar: a window is novel when its best match falls ``z`` spreads
            # below its usual best match (and below the vigilance)
            novel = True
            if n_cat[s] > 0:
                mu, var = match_stats[s, 0], match_stats[s, 1]
                bar = vigilance if n_ds[s] - width < 2 else min(vigilance,
                                                                mu - z * math.sqrt(var))
                novel = best_match < bar
                a = max(1.0 / (n_ds[s] - width + 1.0), _STATS_ALPHA)
                mu += a * (best_match - mu)
                match_stats[s, 0] = mu
                match_stats[s, 1] = var + a * ((best_match - mu) ** 2 - var)
                graded = min(1.0, 0.5 * (1.0 - best_match) / max(1.0 - bar, 1e-9))
                if hold:
                    held[s] = graded if c + 1 > learn else 0.0
                    out[i, j] = held[s]
                elif novel and c + 1 > learn and calm[s] >= mask:
                    out[i, j] = graded
            calm[s] = 0 if novel else calm[s] + 1
            if best >= 0:
                for k in range(2 * dim):
                    w = cats[s, best, k]
                    cats[s, best, k] = beta * min(feat[k], w) + (1.0 - beta) * w
                used[s, best] = n_ds[s]
                continue
            # a new category; when all are taken, it replaces the one unused the longest (a
            # forced merge would grow a box past what the vigilance lets resonate again)
            q = n_cat[s]
            if q < n_max:
                n_cat[s] = q + 1
            else:
                q = 0
                for r in range(1, n_max):
                    if used[s, r] < used[s, q]:
                        q = r
            for k in range(2 * dim):
                cats[s, q, k] = feat[k]
            used[s, q] = n_ds[s]


def window_shape_reference(
    count: NDArray[np.int64], n_acc: NDArray[np.int64], acc: NDArray[np.float64],
    ma: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64],
    ring: NDArray[np.float64], n_ds: NDArray[np.int64], calm: NDArray[np.int64],
    cats: NDArray[np.float64], n_cat: NDArray[np.int64], used: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64], step: int,
    range_learn: int, learn: int, vigilance: float, margin: float, spike: float,
    shape_floor: float, beta: float, mask: int, med: NDArray[np.float64], chomp: float,
    match_stats: NDArray[np.float64], z: float, held: NDArray[np.float64], hold: bool,
) -> None:
    """:func:`window_shape_update` in plain numpy: whole-window and whole-category array ops."""
    width = ring.shape[1]
    dim = 2 * width
    out[...] = 0.0
    for j, s in enumerate(slots.tolist()):
        for i in range(x.shape[0]):
            v = float(x[i, j])
            if not np.isfinite(v):
                continue
            if hold:
                out[i, j] = held[s]
            c = int(count[s])
            if c < max(range_learn, 1):
                lo[s] = v if c == 0 else min(lo[s], v)
                hi[s] = v if c == 0 else max(hi[s], v)
            count[s] = c + 1
            first = n_acc[s] == 0
            acc[s] = (v, v, v) if first else (acc[s, 0] + v, max(acc[s, 1], v),
                                              min(acc[s, 2], v))
            n_acc[s] += 1
            if n_acc[s] < step:
                continue
            mean = acc[s, 0] / step
            n_acc[s] = 0
            ma[s] = mean if n_ds[s] == 0 else 0.5 * (ma[s] + mean)
            ext = acc[s, 1] if abs(acc[s, 1] - ma[s]) >= abs(acc[s, 2] - ma[s]) else acc[s, 2]
            rng = hi[s] - lo[s]
            point = ext if abs(ext - mean) > spike * rng else mean
            m0 = point if n_ds[s] == 0 else med[s]
            med[s] = m0 + _MED_RATE * rng * float(np.sign(point - m0))
            ring[s, n_ds[s] % width] = m0 if abs(point - m0) < chomp * rng else point
            n_ds[s] += 1
            if n_ds[s] < width:
                continue
            window = np.roll(ring[s], -(int(n_ds[s]) % width))
            u = (window - lo[s]) / rng if rng > 0.0 else np.full(width, 0.5)
            level = np.clip((u + margin) / (1.0 + 2.0 * margin), 0.0, 1.0)
            span = max(float(window.max() - window.min()), shape_floor * rng)
            shape = (window - window.min()) / span if span > 0.0 else np.zeros(width)
            f = np.concatenate([level, shape])
            feat = np.concatenate([f, 1.0 - f])
            boxes = cats[s, :n_cat[s]]
            inter = np.minimum(feat[None, :], boxes)
            m = inter.sum(axis=1)
            match = m / dim
            choice = np.where(match >= vigilance, m / (_ALPHA + boxes.sum(axis=1)), -1.0)
            best_match = float(match.max()) if boxes.shape[0] else -1.0
            novel = True
            if boxes.shape[0]:
                mu, var = match_stats[s]
                n_pts = int(n_ds[s]) - width
                bar = vigilance if n_pts < 2 else min(vigilance, mu - z * np.sqrt(var))
                novel = best_match < bar
                a = max(1.0 / (n_pts + 1.0), _STATS_ALPHA)
                mu += a * (best_match - mu)
                match_stats[s] = (mu, var + a * ((best_match - mu) ** 2 - var))
                graded = min(1.0, 0.5 * (1.0 - best_match) / max(1.0 - bar, 1e-9))
                if hold:
                    held[s] = graded if c + 1 > learn else 0.0
                    out[i, j] = held[s]
                elif novel and c + 1 > learn and calm[s] >= mask:
                    out[i, j] = graded
            calm[s] = 0 if novel else calm[s] + 1
            if boxes.shape[0] and choice.max() > -1.0:
                best = int(np.argmax(choice))
                cats[s, best] = beta * inter[best] + (1.0 - beta) * cats[s, best]
                used[s, best] = n_ds[s]
                continue
            q = int(n_cat[s])
            if q < cats.shape[1]:
                n_cat[s] = q + 1
            else:
                q = int(np.argmin(used[s]))
            cats[s, q] = feat
            used[s, q] = n_ds[s]


class WindowShape(SoADetector):
    """Window shape novelty over many series (fuzzy ART over down-sampled windows)."""

    name: ClassVar[str] = "window_shape"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "count": (np.int64, (), 0),
        "n_acc": (np.int64, (), 0),
        "acc": (np.float64, (3,), 0.0),
        "ma": (np.float64, (), 0.0),
        "lo": (np.float64, (), 0.0),
        "hi": (np.float64, (), 0.0),
        "ring": (np.float64, (0,), 0.0),
        "n_ds": (np.int64, (), 0),
        "calm": (np.int64, (), 1 << 30),
        "cats": (np.float64, (0, 0), 0.0),
        "n_cat": (np.int64, (), 0),
        "used": (np.int64, (0,), 0),
        "med": (np.float64, (), 0.0),
        "match_stats": (np.float64, (2,), 0.0),
        "held": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, step: int = 5, width: int = 8,
                 categories: int = 32, range_learn: int = 300, learn: int = 450,
                 vigilance: float = 0.9, margin: float = 0.5, spike: float = 0.1,
                 shape_floor: float = 0.1, beta: float = 1.0, mask: int = 0,
                 chomp: float = 0.075, z: float = 3.0, hold: bool = False) -> None:
        if not 0.0 < vigilance < 1.0:
            raise ValueError("vigilance must be in (0, 1)")
        self.step, self.width, self.categories = max(int(step), 1), max(int(width), 2), categories
        self.range_learn, self.learn = range_learn, learn
        self.vigilance, self.margin, self.spike = vigilance, margin, spike
        self.shape_floor, self.beta, self.mask, self.chomp = shape_floor, beta, mask, chomp
        self.z, self.hold = z, hold
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        if name == "ring":
            return (self.width,)
        if name == "cats":
            return (self.categories, 4 * self.width)
        if name == "used":
            return (self.categories,)
        return self._spec[name][1]

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        window_shape_update(
            a["count"], a["n_acc"], a["acc"], a["ma"], a["lo"], a["hi"], a["ring"], a["n_ds"],
            a["calm"], a["cats"], a["n_cat"], a["used"], slots, x, out, self.step,
            self.range_learn, self.learn, self.vigilance, self.margin, self.spike,
            self.shape_floor, self.beta, self.mask, a["med"], self.chomp, a["match_stats"],
            self.z, a["held"], self.hold)
