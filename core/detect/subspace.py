"""Streaming subspace model over all of a device's fields, with calibrated per-field levels.

One model relates every field of a device (1 to ``max_fields`` = 64 of them; a wider device is
modelled in blocks of 64 consecutive fields). Its state is a mean and a covariance with
exponential forgetting, one row of the covariance per field slot (struct-of-arrays); every
``refit`` samples the covariance, standardised to a correlation, is split into its principal
components (enough to explain ``var_frac`` of the variance, at most ``k - 1`` so a residual
remains). Each sample then gives two device statistics: Hotelling's T² inside the subspace
(the fields moved together, further than they do) and Q, the squared prediction error outside
it (the fields left their usual relation). Each field also has its own statistics: its
standardised level and the log-square of its step (a changed spread, a sensor that stopped
moving).

**Calibrated.** Every statistic (on a log scale for T², Q and the step) is averaged on a few
time scales (``scales``: 0 = the sample itself, then EWMA half-lives in samples), and each
average is compared with its own running mean and spread learned on this device
(prequentially: a sample is scored before it teaches). That z becomes a two-sided Gaussian
tail probability, multiplied by the number of statistics (Bonferroni). A field's level is the
larger of its own statistics' level and the device statistics' level times the field's share
of the contribution to the more unusual of T² and Q (so the device's T²/Q blames the field
that moved most). A level compares the probability ``p`` with the per-sample probability
``p*`` that the target false-alarm rate allows: ``level = 1 / (1 + (0.15/0.85) · p/p*)``,
so ``level`` is :data:`ALARM_LEVEL` (0.85, the default rules' bar) exactly at ``p*``.
``p*`` is ``target_per_month`` times the device's learned sample interval over a month
(60 s when no times are given). Everything is learned per device and in units of its own
spread: a noisier device does not alarm more for it.

**Narrow devices.** A device of fewer than ``joint_min_fields`` fields (2 up to it; the
ensemble's default is 9, so 2–8 fields) is scored on one statistic only: each field's step,
and only its lower tail — a field that moves less than it did (stopped, stuck, lost its
signal). On such a device a field that drifts alone is its own principal component (T² would
be its level), relations move with the weather's operating point (Q) and a quantised field's
steps come and go; the model then keeps no covariance and refits nothing.

**Learning**: plain averages over the warm-up (statistics calibrated over its second half),
then slow forgetting (``half_life``); a sample whose level is above 0.5 teaches nothing, so a
fault is not absorbed as normal. A missing field (NaN/Inf) is imputed at its mean for the
device statistics, scores 0 and teaches nothing; the covariance learns only from complete
samples.

>>> import numpy as np
>>> rng = np.random.default_rng(5)
>>> load = rng.normal(0.0, 1.0, 1200)
>>> x = np.c_[load, 2.0 * load, -load, rng.normal(0, 1, 1200)] + rng.normal(0, 0.1, (1200, 4))
>>> det = Subspace(capacity=4, warmup=600)
>>> s = det.update([0, 1, 2, 3], x)
>>> float(s[:600].max()), bool(s[600:].max() < 0.85)          # quiet while it learns
(0.0, True)
>>> bad = np.array([[1.0, -2.0, -1.0, 0.0]] * 3)                # field 1 went the wrong way
>>> s = det.update([0, 1, 2, 3], bad)
>>> int(s[-1].argmax()), bool(s[-1, 1] > 0.85)
(1, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector

__all__ = ["ALARM_LEVEL", "MONTH_S", "Subspace", "subspace_update"]

#: the level at which the calibrated false-alarm rate is reached (the default rules' bar)
ALARM_LEVEL = 0.85
#: seconds in a (30-day) month
MONTH_S = 30.0 * 86400.0
#: stat rows: field level, field step, device T², device Q
_ROWS = 4
_EPS = 1e-3
#: steepness of the level around the alarm bar (only where the level is not the bar)
_GAMMA = 1.0


@numba.njit(cache=True, nogil=True)
def _refit(cov: NDArray[np.float64], basis: NDArray[np.float64], lam: NDArray[np.float64],
           sd: NDArray[np.float64], ncomp: NDArray[np.int64], slots: NDArray[np.int64],
           k: int, var_frac: float) -> None:
    """Principal components of the device's correlation matrix into ``basis``/``lam``."""
    corr = np.empty((k, k))
    scale = np.empty(k)
    for j in range(k):
        scale[j] = math.sqrt(max(cov[slots[j], j], 1e-300))
    for a in range(k):
        for b in range(k):
            c = 0.5 * (cov[slots[a], b] + cov[slots[b], a])
            corr[a, b] = c / (scale[a] * scale[b])
        corr[a, a] = 1.0 if cov[slots[a], a] > 0.0 else 0.0
    w, v = np.linalg.eigh(corr)
    total = 0.0
    for j in range(k):
        total += max(w[j], 0.0)
    keep = 1 if k == 1 else k - 1
    acc = 0.0
    for r in range(k):
        acc += max(w[k - 1 - r], 0.0)
        if total > 0.0 and acc >= var_frac * total:
            keep = min(keep, r + 1)
            break
    s0 = slots[0]
    ncomp[s0] = keep
    for j in range(k):
        sj = slots[j]
        sd[sj] = scale[j]
        lam[sj] = max(w[k - 1 - j], 1e-6) if j < keep else 0.0
        for r in range(keep):
            basis[sj, r] = v[j, k - 1 - r]


@numba.njit(cache=True, nogil=True)
def subspace_update(
    count: NDArray[np.int64], mean: NDArray[np.float64], cov: NDArray[np.float64],
    basis: NDArray[np.float64], lam: NDArray[np.float64], sd: NDArray[np.float64],
    ncomp: NDArray[np.int64], prev: NDArray[np.float64], ew: NDArray[np.float64],
    cal_m: NDArray[np.float64], cal_v: NDArray[np.float64], ncal: NDArray[np.int64],
    interval: NDArray[np.float64], last_t: NDArray[np.float64], level: NDArray[np.float64],
    share: NDArray[np.float64], slots: NDArray[np.int64], x: NDArray[np.float64],
    t: NDArray[np.float64], has_t: bool,
    out: NDArray[np.float64], scales: NDArray[np.float64], alpha: float, alpha_cal: float,
    warmup: int, refit: int, var_frac: float, target: float, field_level: bool,
    joint: bool = True, sd_floor: float = 1e-3,
) -> None:
    """Score then learn one device's fields ``x`` (ticks × fields ≤ 64); levels into ``out``."""
    n_ticks, k = x.shape
    n_sc = scales.shape[0]
    s0 = slots[0]
    z = np.zeros(k)
    ok = np.zeros(k, dtype=np.bool_)
    tt = np.zeros(k)
    e = np.zeros(k)
    contrib = np.zeros(k)
    contrib_t = np.zeros(k)
    u = np.zeros((_ROWS, k))
    pz = np.zeros((_ROWS, k))
    a_sc = np.zeros(n_sc)
    for q in range(n_sc):
        a_sc[q] = 1.0 if scales[q] <= 0.0 else 1.0 - 0.5 ** (1.0 / scales[q])
    a_share = 1.0
    for q in range(n_sc):
        a_share = min(a_share, a_sc[q])
    # a narrow device (not ``joint``) scores only its fields' steps, one-sided
    narrow = not joint and k > 1
    n_tests = float(n_sc * (2 * k + (0 if narrow else 1 if k == 1 else 2)))
    c_level = (1.0 - ALARM_LEVEL) / ALARM_LEVEL
    for i in range(n_ticks):
        # the sample interval (for the false-alarm budget per month): learned, never assumed
        if has_t and math.isfinite(t[i]):
            if last_t[s0] > 0.0 or interval[s0] > 0.0:
                dt = t[i] - last_t[s0]
                if dt > 0.0:
                    if interval[s0] <= 0.0:
                        interval[s0] = dt
                    else:
                        interval[s0] += 0.01 * (min(dt, 10.0 * interval[s0]) - interval[s0])
            last_t[s0] = t[i] if t[i] != 0.0 else 1e-9
        c = count[s0]
        complete = True
        for j in range(k):
            s = slots[j]
            v = x[i, j]
            ok[j] = math.isfinite(v)
            if not ok[j]:
                complete = False
                z[j] = 0.0
                continue
            spread = math.sqrt(max(cov[s, j], 0.0))
            z[j] = (v - mean[s]) / max(spread, 1e-9 * (1.0 + abs(mean[s])))
            z[j] = min(max(z[j], -1e6), 1e6)
        fitted = ncomp[s0] > 0
        # the statistics of this sample: field level and step, device T² and Q
        for j in range(k):
            s = slots[j]
            u[0, j] = z[j]
            dz = z[j] - prev[s] if c > 0 else 0.0
            u[1, j] = math.log(dz * dz + _EPS)
        t2 = 0.0
        q_stat = 0.0
        if fitted:
            m = ncomp[s0]
            for j in range(k):
                s = slots[j]
                e[j] = (x[i, j] - mean[s]) / sd[s] if ok[j] and sd[s] > 0.0 else 0.0
                e[j] = min(max(e[j], -1e6), 1e6)
            for r in range(m):
                acc = 0.0
                for j in range(k):
                    acc += basis[slots[j], r] * e[j]
                tt[r] = acc
                t2 += acc * acc / lam[slots[r]]
            for j in range(k):
                s = slots[j]
                rec = 0.0
                w_t = 0.0
                for r in range(m):
                    rec += basis[s, r] * tt[r]
                    w_t += basis[s, r] * tt[r] / lam[slots[r]]
                res = e[j] - rec
                q_stat += res * res
                contrib[j] = res * res if ok[j] else 0.0
                contrib_t[j] = max(e[j] * w_t, 0.0) if ok[j] else 0.0
            u[2, 0] = math.log(t2 + _EPS)
            u[3, 0] = math.log(q_stat + _EPS)
        # average on each time scale, compare with the running calibration, take tail probs
        calibrate_fields = c >= warmup // 2
        p_dev = 1.0
        p_t2 = 1.0
        for row in range(_ROWS):
            width = k if row < 2 else 1
            if row == 3 and k == 1:
                continue
            if row >= 2 and not fitted:
                continue
            if (row >= 2 and narrow) or (row == 0 and not field_level):
                continue  # a statistic that is not scored is not kept either
            for j in range(width):
                s = slots[j]
                if row < 2 and not ok[j]:
                    continue
                far = 0.0
                for q in range(n_sc):
                    if c == 0:
                        ew[s, row, q] = u[row, j]
                    else:
                        ew[s, row, q] += a_sc[q] * (u[row, j] - ew[s, row, q])
                    n_c = ncal[s, 0 if row < 2 else 1]
                    if c >= warmup and n_c > 1:
                        var = max(cal_v[s, row, q], sd_floor * sd_floor)
                        dev = ew[s, row, q] - cal_m[s, row, q]
                        if row == 1 and narrow:
                            dev = min(dev, 0.0)  # only a field that moves less than it did
                        far = max(far, abs(dev) / math.sqrt(var))
                best = math.erfc(far / math.sqrt(2.0))  # the most unusual scale's tail
                pz[row, j] = best * n_tests
                if row == 2:
                    p_t2 = best * n_tests
                if row >= 2:
                    p_dev = min(p_dev, best * n_tests)
        if p_t2 <= p_dev or k == 1:
            # T² is the more unusual: blame by the fields' shares of it, else of Q
            for j in range(k):
                contrib[j] = contrib_t[j]
        if fitted:
            # the statistics are averaged over up to the longest scale: so are the shares, or
            # the sample after a wild reading of one field would blame the others
            for j in range(k):
                s = slots[j]
                share[s] += a_share * (contrib[j] - share[s])
                contrib[j] = max(contrib[j], share[s])
        top = 0.0
        for j in range(k):
            top = max(top, contrib[j])
        per_month = MONTH_S / (interval[s0] if interval[s0] > 0.0 else 60.0)
        p_star = target / per_month
        worst = 0.0
        for j in range(k):
            s = slots[j]
            if not ok[j] or c < warmup:
                out[i, j] = 0.0 if c < warmup else level[s]
                continue
            p = min(pz[0, j], pz[1, j]) if field_level else pz[1, j]
            lv = 1.0 / (1.0 + c_level * (max(p, 1e-300) / p_star) ** _GAMMA)
            if fitted and top > 0.0 and contrib[j] > 0.0:
                # the device's T²/Q level goes to the fields by their share of it
                lv_dev = 1.0 / (1.0 + c_level * (max(p_dev, 1e-300) / p_star) ** _GAMMA)
                lv = max(lv, lv_dev * contrib[j] / top)
            out[i, j] = lv
            level[s] = lv
            worst = max(worst, lv)
        # learn: while the device looks anomalous, nothing (a fault is not normal)
        quiet = worst <= 0.5
        for row in range(_ROWS):
            width = k if row < 2 else 1
            which = 0 if row < 2 else 1
            if row >= 2 and (not fitted or not complete):
                continue
            if (row == 3 and k == 1) or (row == 0 and not field_level):
                continue
            for j in range(width):
                s = slots[j]
                if row < 2 and not ok[j]:
                    continue
                if c < warmup:
                    if not calibrate_fields:
                        continue
                    a = 1.0 / (ncal[s, which] + 1.0)
                elif quiet:
                    a = alpha_cal
                else:
                    continue
                for q in range(n_sc):
                    d = ew[s, row, q] - cal_m[s, row, q]
                    cal_m[s, row, q] += a * d
                    cal_v[s, row, q] = (1.0 - a) * (cal_v[s, row, q] + a * d * d)
        if c >= warmup // 2:
            for j in range(k):
                if ok[j]:
                    ncal[slots[j], 0] += 1
            if fitted and complete:
                ncal[s0, 1] += 1
        for j in range(k):
            if ok[j]:
                prev[slots[j]] = z[j]
        if not complete or (c >= warmup and not quiet):
            continue
        a = 1.0 / (c + 1.0) if c < warmup else alpha
        for j in range(k):
            s = slots[j]
            dj = x[i, j] - mean[s]
            if narrow:  # the steps need each field's spread only, no relations
                cov[s, j] = (1.0 - a) * (cov[s, j] + a * dj * dj)
                continue
            for b in range(k):
                db = x[i, b] - mean[slots[b]]
                cov[s, b] = (1.0 - a) * (cov[s, b] + a * dj * db)
        for j in range(k):
            s = slots[j]
            mean[s] += a * (x[i, j] - mean[s])
        for j in range(k):
            count[slots[j]] = c + 1
        c += 1
        if not narrow and c >= 10 and (c % refit == 0 or c == warmup // 2 or c == warmup):
            _refit(cov, basis, lam, sd, ncomp, slots, k, var_frac)


class Subspace(SoADetector):
    """Streaming PCA (T², Q) plus per-field level and step, calibrated to a false-alarm rate.

    Each ``update`` call holds one device's fields, always in the same order; more than
    ``max_fields`` are modelled in blocks of ``max_fields`` consecutive fields. ``half_life``
    (samples) is the forgetting of the mean and covariance, ``calibration_half_life`` that of
    the statistics' running distributions; ``field_level``: whether a field's own level (its
    standardised reading) counts, or only its step and the device's T² and Q (a field that
    follows the weather out of the range its warm-up saw is no fault; a field that leaves its
    relation to the others is); ``scales`` the EWMA half-lives (0 = the sample)
    the statistics are averaged on; ``target_per_month`` the false alarms a device may raise
    per month at :data:`ALARM_LEVEL`.
    """

    name: ClassVar[str] = "subspace"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "count": (np.int64, (), 0),
        "mean": (np.float64, (), 0.0),
        "cov": (np.float64, (64,), 0.0),
        "basis": (np.float64, (64,), 0.0),
        "lam": (np.float64, (), 0.0),
        "sd": (np.float64, (), 0.0),
        "ncomp": (np.int64, (), 0),
        "prev": (np.float64, (), 0.0),
        "ew": (np.float64, (_ROWS, 3), 0.0),
        "cal_m": (np.float64, (_ROWS, 3), 0.0),
        "cal_v": (np.float64, (_ROWS, 3), 0.0),
        "ncal": (np.int64, (2,), 0),
        "interval": (np.float64, (), 0.0),
        "last_t": (np.float64, (), 0.0),
        "level": (np.float64, (), 0.0),
        "share": (np.float64, (), 0.0),
    }

    def __init__(self, capacity: int = 1024, warmup: int = 300, half_life: float = 20000.0,
                 calibration_half_life: float = 20000.0,
                 scales: tuple[float, ...] = (0.0, 3.0, 10.0), refit: int = 50,
                 var_frac: float = 0.9, target_per_month: float = 0.3,
                 max_fields: int = 64, field_level: bool = True,
                 joint_min_fields: int = 2, sd_floor: float = 1e-3) -> None:
        self.sd_floor = float(sd_floor)
        self.field_level = field_level
        self.joint_min_fields = max(int(joint_min_fields), 2)
        self.warmup = max(int(warmup), 2)
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.alpha_cal = 1.0 - 0.5 ** (1.0 / calibration_half_life)
        self.scales = np.asarray(scales, dtype=np.float64)
        self.refit = max(int(refit), 1)
        self.var_frac = var_frac
        self.target = target_per_month
        self.max_fields = max_fields
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        if name in ("cov", "basis"):
            return (self.max_fields,)
        if name in ("ew", "cal_m", "cal_v"):
            return (_ROWS, self.scales.shape[0])
        return self._spec[name][1]

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        has_t = t is not None
        tt = t if t is not None else np.zeros(x.shape[0])
        k = x.shape[1]
        joint = k >= self.joint_min_fields
        for lo in range(0, k, self.max_fields):
            hi = min(lo + self.max_fields, k)
            block = np.ascontiguousarray(x[:, lo:hi])
            part = np.empty(block.shape)
            subspace_update(a["count"], a["mean"], a["cov"], a["basis"], a["lam"], a["sd"],
                            a["ncomp"], a["prev"], a["ew"], a["cal_m"], a["cal_v"], a["ncal"],
                            a["interval"], a["last_t"], a["level"], a["share"], slots[lo:hi],
                            block, tt, has_t, part, self.scales, self.alpha, self.alpha_cal,
                            self.warmup, self.refit, self.var_frac, self.target,
                            self.field_level, joint, self.sd_floor)
            out[:, lo:hi] = part
