"""Peer comparison: each device against identical devices at the same time, each cohort
against its own past (issue 20).

The detectors beside this one judge a series by its own history, so a device that drifts
slowly, or a whole fleet after a warm week, looks normal to them. Here every series carries two
labels the shell hands in with :meth:`Peer.assign` (core knows nothing of registries): its
**peer group** (devices that should read alike under the same weather: tenant, product, model,
region, and the field) and its **cohort** (the peer group split further by firmware and
production batch). Samples are averaged per time bucket (``bucket_s``); once every member had
time to report a bucket (``lag_s`` after it ends, by the latest sample time seen), the bucket is
judged across the peer group:

- the group's robust location (median of the members' bucket means) and each member's
  *excess* ``e`` = its mean − that median − its own usual offset from the group (learned
  slowly, clipped, so a device that runs a little warm is not an outlier);
- the group's robust spread (1.4826 · MAD of the excesses): **device score** from the
  device's excess in spreads, smoothed over ``persist`` buckets, ``g² / (g² + half_z²)``;
- per cohort of at least ``min_cohort`` warm members, against the rest of the group (at least
  as many warm members: the majority is what normal means), the difference of the two median
  excesses in standard errors (1.2533 · the rest's spread · √(1/n + 1/n_rest)): **cohort
  score** (the cohort moving together away from its own past offsets, e.g. after a rollout).
- per pool across the groups (a production batch, a firmware version: devices of one pool
  in many groups), how many of its members are off their peers at a lower bar than the
  device score's, against the rest of the product: **drift score** (several devices of one
  batch drifting the same way before each is unusual enough on its own;
  :mod:`core.detect.peer_drift`).

A device whose cohort label changes (a firmware update) learns its offset afresh for
``warmup`` buckets and its device score says nothing meanwhile (a new control curve is not a
fault of that device), while for ``cohort_hold`` buckets its cohort score still measures it
from its offset *before* the move: a new firmware cohort whose members all moved away from
where they used to sit, relative to the peers still on the old one, is what the cohort score
reports (the step ``Ensemble.rebaseline`` absorbs device by device).

With a ``share`` (:mod:`core.detect.peer_share`; the scale-out engine sets it on every
partition's detector) the series here are one partition of the fleet: a due bucket is not
judged at once but published (each member's mean, offsets and warm flags), and judged by
:meth:`Peer.judge_pending` over every partition's members once they are in, the statistics over
the union and the updates for this partition's series only.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> det = Peer(capacity=8, bucket_s=3600.0, lag_s=0.0, warmup=6, min_members=5)
>>> slots = np.arange(8)
>>> det.assign(slots, ["acme/heat_pump/t_flow"] * 8, ["acme/heat_pump/2.5"] * 8)
>>> t = 600.0 * np.arange(6 * 48)                                  # two days, 10-minute samples
>>> weather = 5.0 * np.sin(t / 86_400.0 * 2 * np.pi)[:, None]      # every device feels it
>>> x = 40.0 + weather + rng.normal(0.0, 0.3, (t.size, 8)) + np.arange(8.0)  # own offsets
>>> x[-60:, 2] += np.linspace(0.0, 6.0, 60)                        # one drifts off its peers
>>> s = det.update(slots, x, t)
>>> bool(s[-1, 2] > 0.8), bool(np.delete(s[-1], 2).max() < 0.3)
(True, True)
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector, StateDict
from core.detect.peer_drift import POOLS, judge_pools
from core.detect.peer_share import PeerShare, PeerSummary

__all__ = ["MAX_PENDING", "Peer", "judge_members", "label_id", "peer_members", "peer_reference",
           "peer_update"]

_MAD_TO_SIGMA = 1.4826
_MEDIAN_SE = 1.2533141373155001
_UNSET = -(1 << 62)
#: buckets of closed means each series keeps (members may report a few buckets late)
RING = 16
#: a bucket a shared detector judged: (bucket, its slots here, their means, their device,
#: cohort and drift scores just after)
Judged = tuple[int, NDArray[np.int64], NDArray[np.float64], NDArray[np.float64],
               NDArray[np.float64], NDArray[np.float64]]
#: due buckets a shared detector holds while it waits for other partitions; past this many
#: the oldest is judged with what arrived (bounded memory through any stall)
MAX_PENDING = 64
#: members of the fleet a shared detector judges in one go (whole groups, one at least): its
#: memory for judging a bucket, ~50 bytes each, whatever the fleet's size
JUDGE_MEMBERS = 65_536


def _spans_rows(lo: NDArray[np.int64], hi: NDArray[np.int64]) -> NDArray[np.int64]:
    """The rows of every span [lo, hi), in order.

    >>> _spans_rows(np.array([0, 5]), np.array([2, 8])).tolist()
    [0, 1, 5, 6, 7]
    """
    size = hi - lo
    total = int(size.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(size)[:-1]]), size)
    return (first + np.arange(total)).astype(np.int64)


def label_id(label: str) -> int:
    """A stable non-zero 63-bit id of a group or cohort label (0 means "not assigned")."""
    digest = hashlib.blake2b(label.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & ((1 << 62) - 1)) or 1


@numba.njit(cache=True, nogil=True)
def peer_members(
    slots: NDArray[np.int64], vals: NDArray[np.float64], group: NDArray[np.int64],
    cohort: NDArray[np.int64], offset: NDArray[np.float64], n_closed: NDArray[np.int64],
    anchor: NDArray[np.float64], hold: NDArray[np.int64], warmup: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64],
           NDArray[np.bool_], NDArray[np.bool_]]:
    """What the judging needs of each member ``slots`` (bucket means ``vals``): its group,
    cohort, usual offset, the offset its cohort is measured from, whether it may score and
    whether it counts in its cohort's score (its state before the bucket is judged)."""
    n = slots.shape[0]
    g = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.int64)
    off = np.empty(n)
    ref = np.empty(n)
    warm = np.empty(n, dtype=np.bool_)
    cw = np.empty(n, dtype=np.bool_)
    for i in range(n):
        s = slots[i]
        g[i] = group[s]
        c[i] = cohort[s]
        off[i] = offset[s]
        ref[i] = anchor[s] if hold[s] > 0 else offset[s]
        warm[i] = n_closed[s] >= warmup
        cw[i] = warm[i] or hold[s] > 0
    return g, c, off, ref, warm, cw


@numba.njit(cache=True, nogil=True)
def judge_members(
    m_slot: NDArray[np.int64], m_group: NDArray[np.int64], m_cohort: NDArray[np.int64],
    m_val: NDArray[np.float64], m_off: NDArray[np.float64], m_ref: NDArray[np.float64],
    m_warm: NDArray[np.bool_], m_cw: NDArray[np.bool_],
    offset: NDArray[np.float64], n_closed: NDArray[np.int64], hold: NDArray[np.int64],
    zs: NDArray[np.float64], czs: NDArray[np.float64], score: NDArray[np.float64],
    cscore: NDArray[np.float64], alpha: float, min_members: int, min_cohort: int,
    half_z: float, persist: float, clip: float, spread_floor: float,
) -> None:
    """Judge one bucket of every peer group over its members (:func:`peer_members`' columns
    and their means ``m_val``): the statistics over all of them, the state updates only for
    members with a slot here (``m_slot`` ≥ 0; -1: another partition's device, which its own
    partition judges). The members may come in any order."""
    count = m_slot.shape[0]
    order = np.argsort(m_group, kind="mergesort")
    h2 = half_z * half_z
    a = 0
    while a < count:
        b = a
        g = m_group[order[a]]
        while b < count and m_group[order[b]] == g:
            b += 1
        n = b - a
        if n >= min_members:
            run = order[a:b]
            vals = m_val[run]
            med = np.median(vals)
            e = np.empty(n)
            eb = np.empty(n)  # for the cohorts: a moved device against its offset before
            cw = m_cw[run]
            for i in range(n):
                m = run[i]
                e[i] = vals[i] - med - m_off[m]
                eb[i] = vals[i] - med - m_ref[m]
                s = m_slot[m]
                if s >= 0 and hold[s] > 0:
                    hold[s] -= 1
            me = np.median(e)
            sp = _MAD_TO_SIGMA * np.median(np.abs(e - me))
            sp = max(sp, spread_floor * abs(med), 1e-9)
            for i in range(n):
                s = m_slot[run[i]]
                if s < 0:
                    continue
                dev = e[i] - me
                zc = min(max(dev / sp, -10.0), 10.0)
                zs[s] += persist * (zc - zs[s])
                warm = m_warm[run[i]]
                if warm:
                    gz = zs[s] * zs[s]
                    score[s] = gz / (gz + h2)
                else:
                    zs[s] = 0.0
                    score[s] = 0.0
                rate = max(alpha, 1.0 / (n_closed[s] + 1.0))
                lim = clip * sp if warm else abs(dev)
                offset[s] += rate * min(max(dev, -lim), lim)
                n_closed[s] += 1
            # cohorts inside the group: sort the run by cohort, judge each run of warm members
            cohorts = m_cohort[run]
            by_cohort = np.argsort(cohorts, kind="mergesort")
            c0 = 0
            while c0 < n:
                c1 = c0
                c = cohorts[by_cohort[c0]]
                while c1 < n and cohorts[by_cohort[c1]] == c:
                    c1 += 1
                n_warm = 0
                for i in range(c0, c1):
                    if cw[by_cohort[i]]:
                        n_warm += 1
                n_rest = int(cw.sum()) - n_warm
                zc = 0.0
                # the rest of the group, at least as large, is the reference: the majority
                # is what "normal" means (a cohort is not judged against a smaller one)
                judged = n_warm >= min_cohort and n_rest >= max(n_warm, min_cohort)
                if judged:
                    ce = np.empty(n_warm)
                    rest = np.empty(n_rest)
                    w = 0
                    r = 0
                    for i in range(n):
                        if not cw[i]:
                            continue
                        if cohorts[i] == c:
                            ce[w] = eb[i]
                            w += 1
                        else:
                            rest[r] = eb[i]
                            r += 1
                    mr = np.median(rest)
                    sr = _MAD_TO_SIGMA * np.median(np.abs(rest - mr))
                    sr = max(sr, spread_floor * abs(med), 1e-9)
                    se = _MEDIAN_SE * sr * math.sqrt(1.0 / n_warm + 1.0 / n_rest)
                    zc = min(max((np.median(ce) - mr) / se, -10.0), 10.0)
                for i in range(c0, c1):
                    s = m_slot[run[by_cohort[i]]]
                    if s < 0:
                        continue
                    if judged and cw[by_cohort[i]]:
                        czs[s] += persist * (zc - czs[s])
                        gz = czs[s] * czs[s]
                        cscore[s] = gz / (gz + h2)
                    else:
                        czs[s] = 0.0
                        cscore[s] = 0.0
                c0 = c1
        a = b


@numba.njit(cache=True, nogil=True)
def _judge_bucket(
    h: int, group: NDArray[np.int64], cohort: NDArray[np.int64], ring_val: NDArray[np.float64],
    ring_bucket: NDArray[np.int64], offset: NDArray[np.float64], n_closed: NDArray[np.int64],
    anchor: NDArray[np.float64], hold: NDArray[np.int64],
    zs: NDArray[np.float64], czs: NDArray[np.float64], score: NDArray[np.float64],
    cscore: NDArray[np.float64], alpha: float, warmup: int, min_members: int, min_cohort: int,
    half_z: float, persist: float, clip: float, spread_floor: float,
    zbucket: NDArray[np.int64],
) -> None:
    """Judge bucket ``h`` across every peer group: scores and offsets of its members (and
    which were warm, ``zbucket``, for the pools of :mod:`.peer_drift`)."""
    slots = _bucket_members(h, group, ring_bucket)
    vals = np.empty(slots.shape[0])
    k = h % ring_val.shape[1]
    for i in range(slots.shape[0]):
        vals[i] = ring_val[slots[i], k]
    g, c, off, ref, warm, cw = peer_members(slots, vals, group, cohort, offset, n_closed,
                                            anchor, hold, warmup)
    judge_members(slots, g, c, vals, off, ref, warm, cw, offset, n_closed, hold, zs, czs, score,
                  cscore, alpha, min_members, min_cohort, half_z, persist, clip, spread_floor)
    for i in range(slots.shape[0]):
        if warm[i]:
            zbucket[slots[i]] = h


@numba.njit(cache=True, nogil=True)
def _bucket_members(h: int, group: NDArray[np.int64], ring_bucket: NDArray[np.int64]
                    ) -> NDArray[np.int64]:
    """Labelled slots whose ring holds a closed mean of bucket ``h``."""
    k = h % ring_bucket.shape[1]
    count = 0
    for s in range(group.shape[0]):
        if group[s] != 0 and ring_bucket[s, k] == h:
            count += 1
    members = np.empty(count, dtype=np.int64)
    count = 0
    for s in range(group.shape[0]):
        if group[s] != 0 and ring_bucket[s, k] == h:
            members[count] = s
            count += 1
    return members


@numba.njit(cache=True, nogil=True, error_model="numpy")
def peer_update(
    group: NDArray[np.int64], cohort: NDArray[np.int64], acc_sum: NDArray[np.float64],
    acc_n: NDArray[np.int64], acc_bucket: NDArray[np.int64], ring_val: NDArray[np.float64],
    ring_bucket: NDArray[np.int64], offset: NDArray[np.float64], n_closed: NDArray[np.int64],
    anchor: NDArray[np.float64], hold: NDArray[np.int64],
    zs: NDArray[np.float64], czs: NDArray[np.float64], score: NDArray[np.float64],
    cscore: NDArray[np.float64], watermark: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64],
    out: NDArray[np.float64], out_cohort: NDArray[np.float64],
    bucket_s: float, lag_s: float, alpha: float, warmup: int, min_members: int,
    min_cohort: int, half_z: float, persist: float, clip: float, spread_floor: float,
    ref: NDArray[np.int64], pool: NDArray[np.int64], zbucket: NDArray[np.int64],
    dscore: NDArray[np.float64], out_drift: NDArray[np.float64], drift_bar: float,
    drift_min: int, drift_alpha: float, judge: bool = True,
) -> None:
    """Average ``x`` (ticks × columns, times ``t`` ascending) into buckets; at each tick
    first judge every bucket that tick's time makes due across the peer groups, then write
    each series' held device and cohort scores into ``out`` and ``out_cohort``: the scores do
    not depend on how a stream is cut into blocks. With ``judge`` False a due bucket is only
    closed (its means kept in the ring) and the caller judges it with the other partitions'
    members (:class:`Peer` with a ``share``)."""
    n_ticks, n_cols = x.shape
    k_ring = ring_val.shape[1]
    for i in range(n_ticks):
        ti = t[i]
        if math.isfinite(ti):
            due = math.floor((ti - lag_s) / bucket_s) - 1
            if due > watermark[0]:
                first = watermark[0] + 1 if watermark[0] != _UNSET else due
                for h in range(max(first, due - k_ring + 1), due + 1):
                    for s in range(group.shape[0]):  # series whose bucket h is open: close it
                        if group[s] != 0 and acc_n[s] > 0 and acc_bucket[s] <= h:
                            kk = acc_bucket[s] % k_ring
                            ring_val[s, kk] = acc_sum[s] / acc_n[s]
                            ring_bucket[s, kk] = acc_bucket[s]
                            acc_sum[s] = 0.0
                            acc_n[s] = 0
                    if judge:
                        _judge_bucket(h, group, cohort, ring_val, ring_bucket, offset,
                                      n_closed, anchor, hold, zs, czs, score, cscore, alpha,
                                      warmup, min_members, min_cohort, half_z, persist, clip,
                                      spread_floor, zbucket)
                        judge_pools(h, ref, pool, zbucket, zs, dscore, drift_bar, drift_min,
                                    drift_alpha, min_cohort)
                watermark[0] = due
        for j in range(n_cols):
            s = slots[j]
            out[i, j] = score[s]
            out_cohort[i, j] = cscore[s]
            out_drift[i, j] = dscore[s]
            v = x[i, j]
            if group[s] == 0 or not (math.isfinite(v) and math.isfinite(ti)):
                continue
            b = math.floor(ti / bucket_s)
            if b <= watermark[0] or b < acc_bucket[s]:
                continue  # too late: that bucket was judged (or this series moved on)
            if b != acc_bucket[s]:
                if acc_n[s] > 0:
                    kk = acc_bucket[s] % k_ring
                    ring_val[s, kk] = acc_sum[s] / acc_n[s]
                    ring_bucket[s, kk] = acc_bucket[s]
                acc_bucket[s] = b
                acc_sum[s] = 0.0
                acc_n[s] = 0
            acc_sum[s] += v
            acc_n[s] += 1


class Peer(SoADetector):
    """Streaming peer comparison of many series, grouped by labels the shell assigns."""

    name: ClassVar[str] = "peer"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "group": (np.int64, (), 0),
        "cohort": (np.int64, (), 0),
        "acc_sum": (np.float64, (), 0.0),
        "acc_n": (np.int64, (), 0),
        "acc_bucket": (np.int64, (), _UNSET),
        "ring_val": (np.float64, (RING,), 0.0),
        "ring_bucket": (np.int64, (RING,), _UNSET),
        "offset": (np.float64, (), 0.0),
        "n_closed": (np.int64, (), 0),
        "anchor": (np.float64, (), 0.0),
        "hold": (np.int64, (), 0),
        "zs": (np.float64, (), 0.0),
        "czs": (np.float64, (), 0.0),
        "score": (np.float64, (), 0.0),
        "cscore": (np.float64, (), 0.0),
        # the pools of a batch drifting together (.peer_drift)
        "ref": (np.int64, (), 0),
        "pool": (np.int64, (POOLS,), 0),
        "zbucket": (np.int64, (), _UNSET),
        "dscore": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, bucket_s: float = 3600.0, lag_s: float = 7200.0,
                 half_life: float = 336.0, warmup: int = 24, min_members: int = 5,
                 min_cohort: int = 3, half_z: float = 4.0, persist: float = 3.0,
                 clip: float = 3.0, spread_floor: float = 1e-3, cohort_hold: int = 168,
                 drift_bar: float = 4.0, drift_min: int = 3, drift_alpha: float = 0.01) -> None:
        """``half_life``, ``warmup``, ``persist`` (the smoothing's half-life) and
        ``cohort_hold`` count buckets; ``drift_*`` judge the pools (a batch, a release:
        :mod:`core.detect.peer_drift`)."""
        self.drift_bar = drift_bar
        self.drift_min = drift_min
        self.drift_alpha = drift_alpha
        self.cohort_hold = cohort_hold
        self.bucket_s = bucket_s
        self.lag_s = lag_s
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.warmup = warmup
        self.min_members = min_members
        self.min_cohort = min_cohort
        self.half_z = half_z
        self.persist = 1.0 - 0.5 ** (1.0 / persist)
        self.clip = clip
        self.spread_floor = spread_floor
        self._watermark = np.array([_UNSET], dtype=np.int64)
        self._last_cohort: NDArray[np.float64] = np.zeros((0, 0))
        self._last_drift: NDArray[np.float64] = np.zeros((0, 0))
        #: the other partitions' members (:mod:`core.detect.peer_share`); None: this
        #: detector's own series are the whole fleet, and it judges a bucket as it falls due
        self.share: PeerShare | None = None
        #: with a share, due buckets not judged yet: (bucket, slots, their means, the
        #: summary published, if it was)
        self._pending: deque[tuple[int, NDArray[np.int64], NDArray[np.float64],
                                   PeerSummary | None]] = deque()
        #: with a share, the buckets judged since :meth:`take_judged` (the last
        #: ``4 × MAX_PENDING`` if nobody takes them: a detector used without a pipeline)
        self._judged: deque[Judged] = deque(maxlen=4 * MAX_PENDING)
        super().__init__(capacity)

    def assign(self, slots: NDArray[np.int64] | Sequence[int], groups: Sequence[str],
               cohorts: Sequence[str], refs: Sequence[str] | None = None,
               pools: Sequence[Sequence[str]] | None = None) -> None:
        """Label series: each slot's peer group and cohort (a series without labels scores 0),
        and for the drift score its reference (the product's field) and up to
        :data:`~core.detect.peer_drift.POOLS` pools (its batch, its firmware).

        A slot whose cohort changes (a firmware update) learns its offset afresh; for
        ``cohort_hold`` buckets its cohort score still measures it from its offset before.
        """
        s = np.ascontiguousarray(slots, dtype=np.int64)
        self._ensure(s)
        g = np.array([label_id(x) for x in groups], dtype=np.int64)
        c = np.array([label_id(x) for x in cohorts], dtype=np.int64)
        a = self._arrays
        moved = s[(a["cohort"][s] != 0) & (a["cohort"][s] != c)]
        warm = moved[a["n_closed"][moved] >= self.warmup]
        a["anchor"][warm] = a["offset"][warm]  # the cohort score still sees where it was
        a["hold"][warm] = self.cohort_hold
        a["n_closed"][moved] = 0
        a["group"][s] = g
        a["cohort"][s] = c
        if refs is not None and pools is not None:
            p = np.zeros((s.size, POOLS), dtype=np.int64)
            for i, names in enumerate(pools):
                for j, name in enumerate(list(names)[:POOLS]):
                    p[i, j] = label_id(name)
            a["pool"][s] = p
            a["ref"][s] = np.array([label_id(x) for x in refs], dtype=np.int64)

    def last_cohort_scores(self) -> NDArray[np.float64]:
        """Cohort scores of the last :meth:`update`, same shape as its device scores."""
        return self._last_cohort

    def last_drift_scores(self) -> NDArray[np.float64]:
        """Drift scores of the last :meth:`update` (several devices of its batch drifting the
        same way, this series among them), same shape as its device scores."""
        return self._last_drift

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        cohort_out = np.zeros_like(out)
        drift_out = np.zeros_like(out)
        if t is None:  # no times, no buckets: nothing to compare at the same time
            out[...] = 0.0
        else:
            shared = self.share is not None
            before = int(self._watermark[0])
            peer_update(a["group"], a["cohort"], a["acc_sum"], a["acc_n"], a["acc_bucket"],
                        a["ring_val"], a["ring_bucket"], a["offset"], a["n_closed"],
                        a["anchor"], a["hold"], a["zs"],
                        a["czs"], a["score"], a["cscore"], self._watermark, slots, x, t, out,
                        cohort_out, self.bucket_s, self.lag_s, self.alpha, self.warmup,
                        self.min_members, self.min_cohort, self.half_z, self.persist,
                        self.clip, self.spread_floor, a["ref"], a["pool"], a["zbucket"],
                        a["dscore"], drift_out, self.drift_bar, self.drift_min,
                        self.drift_alpha, not shared)
            after = int(self._watermark[0])
            if shared and after != before:
                if before != _UNSET:
                    first = before + 1
                else:  # the kernel starts at the bucket due at the first timed tick
                    t0 = t[np.isfinite(t)][0]
                    first = math.floor((t0 - self.lag_s) / self.bucket_s) - 1
                for h in range(max(first, after - RING + 1), after + 1):
                    members = _bucket_members(h, a["group"], a["ring_bucket"])
                    self._pending.append((h, members, a["ring_val"][members, h % RING].copy(),
                                          None))
                self.judge_pending()
        self._last_cohort = cohort_out
        self._last_drift = drift_out

    def judge_pending(self) -> int:
        """Judge the due buckets, oldest first, as far as the other partitions' members are in
        (each bucket's own members published first, from the state after the one before);
        returns how many still wait. :meth:`update` calls it when buckets fall due; whoever
        learns that summaries arrived (the engine) calls it too. Not at every update: while a
        bucket waits, asking again at each message cost the scale-out engine 0.2 CPU µs a
        sample."""
        if self.share is None:
            return 0
        a = self._arrays
        while self._pending:
            h, slots, vals, published = self._pending[0]
            if published is None:  # from the state after the bucket before: publish once
                keep = a["group"][slots] != 0  # a series forgotten or unlabelled since
                slots, vals = slots[keep], vals[keep]
                g, c, off, ref, warm, cw = peer_members(
                    slots, vals, a["group"], a["cohort"], a["offset"], a["n_closed"],
                    a["anchor"], a["hold"], self.warmup)
                rows = PeerSummary.order(g, c)  # a summary's rows are sorted by group
                slots, vals = slots[rows], vals[rows]
                published = PeerSummary.of(g[rows], c[rows], vals, off[rows], ref[rows],
                                           warm[rows], cw[rows])
                self.share.publish(h, published)
                self._pending[0] = (h, slots, vals, published)
            others = self.share.gather(h, force=len(self._pending) > MAX_PENDING)
            if others is None:
                return len(self._pending)
            self._judge_shared(slots, [published, *others])
            # the drift score's pools: over this partition's own members only (not shared)
            local = published.warm
            a["zbucket"][slots[local]] = h
            judge_pools(h, a["ref"], a["pool"], a["zbucket"], a["zs"], a["dscore"],
                        self.drift_bar, self.drift_min, self.drift_alpha, self.min_cohort)
            if slots.shape[0]:
                by_slot = np.argsort(slots, kind="stable")  # handed on as they were collected
                s = slots[by_slot]
                self._judged.append((h, s, vals[by_slot], a["score"][s].copy(),
                                     a["cscore"][s].copy(), a["dscore"][s].copy()))
            self._pending.popleft()
        return 0

    def _judge_shared(self, slots: NDArray[np.int64], parts: list[PeerSummary]) -> None:
        """Judge the groups of this partition's members (``parts[0]``, rows ``slots``) over
        every partition's members of them (``parts``), a few groups at a time: the members of
        the fleet are never copied into one union (at a million devices that was 210 MB a
        bucket and partition). :func:`judge_members` judges each group on its own and whatever
        the order of its members, so this is the one-union judging, bit for bit."""
        mine = parts[0]
        if not len(mine):
            return
        parts = [mine, *[p for p in parts[1:] if len(p)]]
        if sum(len(p) for p in parts) <= JUDGE_MEMBERS:  # one go: the union is small
            self._judge_union(slots, parts)
            return
        groups = np.unique(mine.run_group)
        # per part, each of those groups' rows [lo, hi)
        spans = []
        for part in parts:
            start = part.run_start
            lo = start[np.searchsorted(part.run_group, groups, side="left")]
            hi = start[np.searchsorted(part.run_group, groups, side="right")]
            spans.append((lo, hi))
        size = np.sum([hi - lo for lo, hi in spans], axis=0)
        ends = np.cumsum(size)
        g0 = 0
        while g0 < groups.size:  # groups of at most JUDGE_MEMBERS members together (≥ one)
            base = ends[g0 - 1] if g0 else 0
            g1 = max(int(np.searchsorted(ends, base + JUDGE_MEMBERS, side="right")), g0 + 1)
            self._judge_rows(slots, [(p, _spans_rows(lo[g0:g1], hi[g0:g1]))
                                     for p, (lo, hi) in zip(parts, spans, strict=True)])
            g0 = g1

    def _judge_union(self, slots: NDArray[np.int64], parts: list[PeerSummary]) -> None:
        """:func:`judge_members` over every member of ``parts`` at once (the first part this
        partition's, its slots ``slots``): each array made in one go over the parts."""
        size = np.array([len(p) for p in parts], dtype=np.int64)
        run_size = np.concatenate([p.run_size for p in parts])
        group = np.repeat(np.concatenate([p.run_group for p in parts]), run_size)
        cohort = np.repeat(np.concatenate([p.run_cohort for p in parts]), run_size)
        offset = np.concatenate([p.offset for p in parts])
        reference = offset
        if any(p.held.size for p in parts):
            reference = offset.copy()
            start = np.cumsum(size) - size
            reference[np.concatenate([p.held + at for p, at in zip(parts, start, strict=True)])
                      ] = np.concatenate([p.anchor for p in parts])
        m_slot = np.full(group.size, -1, dtype=np.int64)
        m_slot[: slots.size] = slots
        self._judge(m_slot, group, cohort, np.concatenate([p.val for p in parts]), offset,
                    reference, np.concatenate([p.flags for p in parts]))

    def _judge_rows(self, slots: NDArray[np.int64],
                    rows: list[tuple[PeerSummary, NDArray[np.int64]]]) -> None:
        """:func:`judge_members` over ``rows`` (ascending) of each summary, the first one's
        rows this partition's (its slots ``slots``)."""
        columns = [(p.group_at(r), p.cohort_at(r), p.val[r], p.offset[r], p.reference_at(r),
                    p.flags[r]) for p, r in rows]
        group, cohort, val, offset, reference, flags = (np.concatenate(c)
                                                        for c in zip(*columns, strict=True))
        m_slot = np.full(group.size, -1, dtype=np.int64)
        m_slot[: rows[0][1].size] = slots[rows[0][1]]
        self._judge(m_slot, group, cohort, val, offset, reference, flags)

    def _judge(self, m_slot: NDArray[np.int64], group: NDArray[np.int64],
               cohort: NDArray[np.int64], val: NDArray[np.float64], offset: NDArray[np.float64],
               reference: NDArray[np.float64], flags: NDArray[np.uint8]) -> None:
        a = self._arrays
        judge_members(m_slot, group, cohort, val, offset, reference,
                      (flags & 1).astype(np.bool_), (flags & 2).astype(np.bool_),
                      a["offset"], a["n_closed"], a["hold"], a["zs"],
                      a["czs"], a["score"], a["cscore"], self.alpha, self.min_members,
                      self.min_cohort, self.half_z, self.persist, self.clip, self.spread_floor)

    def take_judged(self) -> list[Judged]:
        """With a share, the buckets judged since the last call, oldest first: (bucket, this
        partition's slots in it, their means, their device, cohort and drift scores just after).

        A shared bucket is judged when the last partition's members arrive, which may be after
        this partition's last :meth:`update` (whose scores then never showed the judgment):
        whoever hands the scores on (the pipeline) takes them from here, once each.
        """
        judged = list(self._judged)
        self._judged.clear()
        return judged

    def due_at(self, bucket: int) -> float:
        """The sample time from which ``bucket`` is due (``lag_s`` after it ended)."""
        return (bucket + 1) * self.bucket_s + self.lag_s

    def state(self) -> StateDict:
        """Copy of the learned state, the bucket watermark and the buckets still waiting for
        other partitions included."""
        out = super().state()
        out["watermark"] = self._watermark.copy()
        if self._pending:
            out["pending_bucket"] = np.array([p[0] for p in self._pending], dtype=np.int64)
            out["pending_size"] = np.array([p[1].shape[0] for p in self._pending],
                                           dtype=np.int64)
            out["pending_slot"] = np.concatenate([p[1] for p in self._pending])
            out["pending_val"] = np.concatenate([p[2] for p in self._pending])
        return out

    def load_state(self, state: StateDict) -> None:
        """Restore what :meth:`state` returned (waiting buckets are published again)."""
        super().load_state({k: v for k, v in state.items()
                            if k != "watermark" and not k.startswith("pending_")})
        mark = state.get("watermark")
        self._watermark = (np.array([_UNSET], dtype=np.int64) if mark is None
                           else np.asarray(mark, dtype=np.int64).copy())
        self._pending.clear()
        if "pending_bucket" in state:
            ends = np.cumsum(state["pending_size"])
            for h, start, end in zip(state["pending_bucket"].tolist(),
                                     (ends - state["pending_size"]).tolist(), ends.tolist(),
                                     strict=True):
                self._pending.append((int(h), state["pending_slot"][start:end].astype(np.int64),
                                      state["pending_val"][start:end].astype(np.float64), None))


def peer_reference(
    groups: NDArray[np.int64], cohorts: NDArray[np.int64], means: NDArray[np.float64], *,
    warmup: int, min_members: int, min_cohort: int, half_z: float, persist: float,
    alpha: float, clip: float, spread_floor: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Plain numpy twin of the judging, over whole buckets at once: ``means`` (buckets × series,
    NaN where a series did not report) → device and cohort scores held after each bucket.

    Every series is labelled and keeps its labels; the streaming kernel must agree with it
    when it sees the same bucket means.
    """
    n_b, n_s = means.shape
    offset = np.zeros(n_s)
    n_closed = np.zeros(n_s, dtype=np.int64)
    zs, czs = np.zeros(n_s), np.zeros(n_s)
    score, cscore = np.zeros(n_s), np.zeros(n_s)
    out, out_c = np.zeros((n_b, n_s)), np.zeros((n_b, n_s))
    for h in range(n_b):
        for g in np.unique(groups):
            run = np.flatnonzero((groups == g) & np.isfinite(means[h]))
            if run.size < min_members:
                continue
            med = np.median(means[h, run])
            e = means[h, run] - med - offset[run]
            me = np.median(e)
            sp = max(_MAD_TO_SIGMA * np.median(np.abs(e - me)), spread_floor * abs(med), 1e-9)
            dev = e - me
            warm = n_closed[run] >= warmup
            zs[run] += persist * (np.clip(dev / sp, -10.0, 10.0) - zs[run])
            zs[run[~warm]] = 0.0
            score[run] = np.where(warm, zs[run] ** 2 / (zs[run] ** 2 + half_z**2), 0.0)
            rate = np.maximum(alpha, 1.0 / (n_closed[run] + 1.0))
            lim = np.where(warm, clip * sp, np.abs(dev))
            offset[run] += rate * np.clip(dev, -lim, lim)
            n_closed[run] += 1
            for c in np.unique(cohorts[run]):
                inside = cohorts[run] == c
                n_warm = int((inside & warm).sum())
                n_rest = int((~inside & warm).sum())
                members = run[inside]
                if not (n_warm >= min_cohort and n_rest >= max(n_warm, min_cohort)):
                    czs[members] = 0.0
                    cscore[members] = 0.0
                    continue
                rest = e[~inside & warm]
                mr = np.median(rest)
                sr = max(_MAD_TO_SIGMA * np.median(np.abs(rest - mr)), spread_floor * abs(med),
                         1e-9)
                se = _MEDIAN_SE * sr * np.sqrt(1.0 / n_warm + 1.0 / n_rest)
                zc = float(np.clip((np.median(e[inside & warm]) - mr) / se, -10.0, 10.0))
                hot = run[inside & warm]
                czs[hot] += persist * (zc - czs[hot])
                cscore[hot] = czs[hot] ** 2 / (czs[hot] ** 2 + half_z**2)
                cold = run[inside & ~warm]
                czs[cold] = 0.0
                cscore[cold] = 0.0
        out[h], out_c[h] = score, cscore
    return out, out_c
