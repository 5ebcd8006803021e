"""Regression residual: a field that is off *for what the device's other fields say*.

Each field of a device is predicted from the device's other fields by a regression learned
online: from every field it uses the reading, its square (a pump's pressure falls with the
square of its flow) and slow averages of both (a motor warms up with its current, minutes
later), never anything derived from the predicted field itself. The regression comes from a
slowly forgotten EWMA mean and covariance of those features, refitted every ``refit`` samples
on the features a forward selection picks for each field (each must explain at least
``select`` of what the ones before it left: on a short warm-up of wandering loads a regression
on all of them fits noise and walks off as the loads leave the warm-up's range); the
residual, in units of its learned spread, says "discharge temperature high *for this
compressor current and outdoor temperature*" even while every field alone is within its daily
range.

The residual is then averaged over two time scales, a short one for sudden faults (a failed
compressor, a stuck sensor) and a long one for slow drifts (a refrigerant leak that creeps
over days), each measured against its own slowly learned spread. The score is the larger of
the two: a *level* that stays high while the fault persists, which is what rules with a
``for`` duration need. The long average counts at most ``release`` of its spreads beyond where the
short one leans its way, so the level lets go once the relation is back instead of for as
long as the long average remembers the fault.

One wild reading stays in its own field. The slow averages see each reading winsorised at
``lag_clip`` of the field's learned spreads (a sensor that reads 60 times its value would skew
the others' predictions for as long as the averages remember it, its square for longer), and
when a sample is far out, a field whose excursion is at most ``max_lone`` samples old is tried
as the sole culprit: had it read what the others predict for it, would they all be normal? If
so, they are scored that way. A spiking sensor scores on its own field; a fault that moves
several fields, or keeps one off for longer, is scored as it is.

Learning is robust and slow: after the warm-up a sample teaches the baseline less the further
out the device looks (with the square of its worst residual, and the fourth power of its
worst average), and the forgetting half-life is days, so a fault that ramps over a day or two
is not absorbed as normal. A series scores nothing until it has seen ``warmup`` complete
samples (a full daily cycle at one sample a minute by default). :meth:`Regression.rebaseline`
re-anchors a device's levels (not its relations) after a change that legitimately shifts a
baseline, such as a firmware update. The columns of one ``update`` call must be one device's
fields, always in the same order; at most ``max_fields`` of them are related (later ones
score 0). A sample with a field missing keeps every level where it was and teaches nothing.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> load = np.sin(np.arange(3000) / 100.0) + rng.normal(0, 0.3, 3000)
>>> x = np.c_[2.0 * load + 5.0, -load, 10.0 + load] + rng.normal(0, 0.05, (3000, 3))
>>> det = Regression(capacity=3, warmup=1000)
>>> s = det.update([0, 1, 2], x)
>>> float(s[:1000].max()), bool(s[1000:].max() < 0.8)           # quiet while it learns
(0.0, True)
>>> bad = x[:60].copy()
>>> bad[:, 1] += 1.0                                              # field 1 leaves the others
>>> s = det.update([0, 1, 2], bad)
>>> int(s[-1].argmax()), bool(s[-1, 1] > 0.9)
(1, True)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector, as_block
from core.jit import no_refcount_kernel

__all__ = ["FEATURES_PER_FIELD", "Regression", "regression_update"]

#: features each field lends the regression: reading, its square, slow averages of both
FEATURES_PER_FIELD = 4
#: E[min(Z², 4)] for a standard normal Z: keeps the winsorised variance unbiased
_WINSOR_MEAN = 0.9206
#: a sample adds at most this many spreads to a CUSUM (one wild reading cannot alarm)
_CUSUM_CLIP = 8.0
#: the CUSUM counts a sample only when its base's half-life spans at least this many samples
_CUSUM_MIN_SAMPLES = 20.0
#: ``t`` when the caller gives no timestamps: one second per sample
_NO_TIME = np.empty(0)
#: a sample counts into a CUSUM only when its residual leans its way by this many sigmas
_CUSUM_GATE = 1.0
#: a CUSUM holds at most this many bars (``cusum_h``): how long it takes to let go
_CUSUM_CAP = 4.0


@no_refcount_kernel()
def _solve_spd(a: NDArray[np.float64], m: int, b: NDArray[np.float64],
               out: NDArray[np.float64], low: NDArray[np.float64]) -> bool:
    """Solve ``a[:m, :m] out = b`` for a symmetric positive definite ``a`` (Cholesky)."""
    for i in range(m):
        for j in range(i + 1):
            acc = a[i, j]
            for p in range(j):
                acc -= low[i, p] * low[j, p]
            if i == j:
                if acc <= 0.0:
                    return False
                low[i, i] = math.sqrt(acc)
            else:
                low[i, j] = acc / low[j, j]
    for i in range(m):
        acc = b[i]
        for p in range(i):
            acc -= low[i, p] * out[p]
        out[i] = acc / low[i, i]
    for i in range(m - 1, -1, -1):
        acc = out[i]
        for p in range(i + 1, m):
            acc -= low[p, i] * out[p]
        out[i] = acc / low[i, i]
    return True


@no_refcount_kernel()
def _select(full: NDArray[np.float64], idx: NDArray[np.int64], m: int, target: int,
            select: float, sw: NDArray[np.float64], diag: NDArray[np.float64],
            row: NDArray[np.float64], pick: NDArray[np.int64]) -> int:
    """Forward selection of the features ``idx[:m]`` that predict feature ``target``.

    A sweep of the covariance: each step takes the feature whose partial covariance with the
    target explains most of the target's remaining variance, while that is at least
    ``select`` of it. Returns how many were picked; ``idx`` holds them, in the order picked.

    Why: a short warm-up of slowly wandering loads (a rig's 400 samples) lets a regression on
    every other field's reading, square and slow averages fit noise with 28 features. Each
    spurious feature explains a percent or two of the warm-up, and out of it the residual
    walks off by tens of its spreads as the loads wander (issue 17). The features that carry
    a relation (a partner's reading, a flow's square) explain far more than that.
    """
    for p in range(m):
        for q in range(m):
            sw[p, q] = full[idx[p], idx[q]]
        sw[p, m] = full[idx[p], target]
        sw[m, p] = sw[p, m]
        diag[p] = sw[p, p]
    sw[m, m] = full[target, target]
    n_pick = 0
    while n_pick < m:
        best = -1
        gain = 0.0
        for p in range(m):
            # a picked feature's (or a collinear one's) remaining variance is ~0
            if sw[p, p] > 1e-9 * diag[p] and sw[p, p] > 0.0:
                g = sw[p, m] * sw[p, m] / sw[p, p]
                if g > gain:
                    best, gain = p, g
        if best < 0 or gain < select * sw[m, m]:
            break
        pivot = sw[best, best]
        for q in range(m + 1):
            row[q] = sw[best, q]
        for p in range(m + 1):
            f = sw[p, best] / pivot
            if f != 0.0:
                for q in range(m + 1):
                    sw[p, q] -= f * row[q]
        pick[n_pick] = idx[best]
        n_pick += 1
    for p in range(n_pick):
        idx[p] = pick[p]
    return n_pick


@no_refcount_kernel()
def _refit(fcov: NDArray[np.float64], beta: NDArray[np.float64], resvar: NDArray[np.float64],
           slots: NDArray[np.int64], k: int, ridge: float, a: NDArray[np.float64],
           low: NDArray[np.float64], rhs: NDArray[np.float64], sol: NDArray[np.float64],
           idx: NDArray[np.int64], full: NDArray[np.float64], pick: NDArray[np.int64],
           select: float) -> None:
    """Regression of each field's reading on the other fields' features, from the covariance.

    With ``select`` > 0 a field's regression uses only the features a forward selection picks:
    one at a time the feature that explains most of what is left, while it explains at least
    ``select`` of it (see :func:`_select`).
    """
    nf = FEATURES_PER_FIELD
    width = nf * k
    # the device's symmetrised covariance, once: every field's system is a part of it
    for o1 in range(width):
        s1 = slots[o1 // nf]
        f1 = o1 % nf
        for o2 in range(width):
            full[o1, o2] = 0.5 * (fcov[s1, f1, o2] + fcov[slots[o2 // nf], o2 % nf, o1])
    for j in range(k):
        sj = slots[j]
        m = 0
        for o in range(width):
            if o // nf != j:
                idx[m] = o
                m += 1
        if select > 0.0:
            m = _select(full, idx, m, nf * j, select, low, rhs, sol, pick)
        for p in range(m):
            op = idx[p]
            for q in range(m):
                a[p, q] = full[op, idx[q]]
            a[p, p] = a[p, p] * (1.0 + ridge) + 1e-12
            rhs[p] = full[op, nf * j]
        if m == 0 or not _solve_spd(a, m, rhs, sol, low):
            if m == 0:
                for o in range(width):
                    beta[sj, o] = 0.0
                resvar[sj] = max(fcov[sj, 0, nf * j], 1e-12)
            continue
        explained = 0.0
        for o in range(nf * k):
            beta[sj, o] = 0.0
        for p in range(m):
            beta[sj, idx[p]] = sol[p]
            explained += sol[p] * rhs[p]
        total = fcov[sj, 0, nf * j]
        resvar[sj] = max(total - explained, 1e-4 * total, 1e-12)


@no_refcount_kernel()
def _explain_away(c: int, k: int, nf: int, width: int, slots: NDArray[np.int64],
                  beta: NDArray[np.float64], resvar: NDArray[np.float64],
                  fmean: NDArray[np.float64], d: NDArray[np.float64], pr: NDArray[np.float64],
                  z: NDArray[np.float64], alt: NDArray[np.float64], clip: float) -> bool:
    """One wild reading must not make the fields predicted from it look off.

    Had field ``c`` read what the others predict for it, would every other field be within
    ``clip``? Then the others are scored that way (``z`` rewritten for them, True returned):
    a spiking sensor scores on its own field only. A fault that moves several fields together
    passes for no field and is scored as it is.
    """
    sc = slots[c]
    x_hat = fmean[sc, 0] + pr[c]
    keep0 = d[nf * c]
    keep1 = d[nf * c + 1]
    d[nf * c] = pr[c]
    d[nf * c + 1] = x_hat * x_hat - fmean[sc, 1]
    explained = True
    for j in range(k):
        if j == c:
            continue
        s = slots[j]
        if resvar[s] <= 0.0:
            continue
        pred = 0.0
        for o in range(width):
            pred += beta[s, o] * d[o]
        zj = (d[nf * j] - pred) / math.sqrt(resvar[s])
        if abs(zj) > clip:
            explained = False
            break
        alt[j] = zj
    if explained:
        for j in range(k):
            if j != c and resvar[slots[j]] > 0.0:
                z[j] = alt[j]
    d[nf * c] = keep0
    d[nf * c + 1] = keep1
    return explained


@numba.njit(cache=True, nogil=True, inline="always")
def _cusum_add(hi: NDArray[np.float64], lo: NDArray[np.float64], base: NDArray[np.float64],
               s: int, short: float, z: float, sd: float, k: float, bar: float, cap: float,
               a_base: float) -> None:
    """One sample into series ``s``'s two one-sided CUSUMs of the short average.

    Both count from ``base``, a slow average of the short average that learns while both
    CUSUMs are below ``bar`` (the level 0.5): a residual that wanders over hours with what no
    other field measures (a motor's temperature with the weather) moves the base, a break that
    stays does not.
    """
    d = short - base[s]
    dz = z - base[s]
    lean = min(abs(d) / sd, _CUSUM_CLIP)
    up = lean if d > 0.0 and dz > _CUSUM_GATE else 0.0
    down = lean if d < 0.0 and dz < -_CUSUM_GATE else 0.0
    hi[s] = min(max(hi[s] + up - k, 0.0), cap)
    lo[s] = min(max(lo[s] + down - k, 0.0), cap)
    if hi[s] < bar and lo[s] < bar:
        base[s] += a_base * d


@numba.njit(cache=True, nogil=True)
def regression_update(
    fmean: NDArray[np.float64], fcov: NDArray[np.float64], beta: NDArray[np.float64],
    resvar: NDArray[np.float64], lag: NDArray[np.float64], far_run: NDArray[np.int64],
    count: NDArray[np.int64], short: NDArray[np.float64], long: NDArray[np.float64],
    short_var: NDArray[np.float64], long_var: NDArray[np.float64], level: NDArray[np.float64],
    anchor: NDArray[np.int64],
    slots: NDArray[np.int64], x: NDArray[np.float64], out: NDArray[np.float64],
    alpha: float, alpha_short: float, alpha_long: float, alpha_var: float, alpha_lag: float,
    warmup: int, half_z: float, clip: float, ridge: float, anchor_alpha: float,
    short_floor: float, long_floor: float, refit: int, long_half_z: float, lag_clip: float,
    max_lone: int, select: float, release: float,
    cusum_hi: NDArray[np.float64], cusum_lo: NDArray[np.float64],
    cusum_base: NDArray[np.float64], cusum_t: NDArray[np.float64], t: NDArray[np.float64],
    cusum_k: float,
    cusum_h: float, release_lean: float, base_half_life: float,
) -> None:
    """Score then learn one device's fields ``x`` (ticks × fields); levels into ``out``."""
    nf = FEATURES_PER_FIELD
    n_ticks, n_cols = x.shape
    k = min(n_cols, fcov.shape[2] // nf)
    width = nf * k
    f = np.zeros(width)
    d = np.zeros(width)
    z = np.zeros(k)
    pr = np.zeros(k)
    alt = np.zeros(k)
    a = np.zeros((width, width))
    full = np.zeros((width, width))
    low = np.zeros((width, width))
    rhs = np.zeros(width)
    sol = np.zeros(width)
    idx = np.zeros(width, dtype=np.int64)
    pick = np.zeros(width, dtype=np.int64)
    h2 = half_z * half_z
    h2_long = long_half_z * long_half_z
    for i in range(n_ticks):
        complete = k >= 2
        for j in range(n_cols):
            s = slots[j]
            out[i, j] = level[s]
            if j >= k:
                continue
            v = x[i, j]
            if not math.isfinite(v):
                complete = False
                continue
            # the slow averages learn from every reading, winsorised at lag_clip of the
            # field's learned spreads: a wild reading (a spiking sensor that reads 100 times
            # its value) would otherwise skew the other fields' predictions for as long as the
            # averages remember it, its square for longer still
            vm = v
            if count[s] >= warmup:
                band = lag_clip * math.sqrt(max(fcov[s, 0, nf * j], 0.0))
                vm = min(max(v, lag[s, 0] - band), lag[s, 0] + band)
            if lag[s, 2] == 0.0:
                lag[s, 0] = vm
                lag[s, 1] = vm * vm
                lag[s, 2] = 1.0
            else:
                lag[s, 0] += alpha_lag * (vm - lag[s, 0])
                lag[s, 1] += alpha_lag * (vm * vm - lag[s, 1])
        if not complete:
            continue
        s0 = slots[0]
        # the CUSUM's base forgets with a half-life in seconds (samples without timestamps)
        last = cusum_t[s0]
        now = t[i] if t.shape[0] else last + 1.0 if math.isfinite(last) else 0.0
        if not math.isfinite(now):
            now = last + 1.0 if math.isfinite(last) else 0.0
        dt = min(max(now - last, 0.0), 1e9) if math.isfinite(last) else 1.0
        a_base = 1.0 - 0.5 ** (dt / base_half_life)
        # the CUSUM judges a break over minutes: it counts only samples at most
        # 1/_CUSUM_MIN_SAMPLES of the base's half-life apart (a device read once a minute has
        # too few in that time to tell a break from its residual's wander)
        fast = dt * _CUSUM_MIN_SAMPLES <= base_half_life
        for j in range(k):
            cusum_t[slots[j]] = now
        for j in range(k):
            s = slots[j]
            v = x[i, j]
            f[nf * j] = v
            f[nf * j + 1] = v * v
            f[nf * j + 2] = lag[s, 0]
            f[nf * j + 3] = lag[s, 1]
            for c in range(nf):
                d[nf * j + c] = f[nf * j + c] - fmean[s, c]
        worst = 0.0
        r_max = 0.0
        fitted = resvar[s0] > 0.0
        if fitted:
            for j in range(k):
                s = slots[j]
                pred = 0.0
                for o in range(width):
                    pred += beta[s, o] * d[o]
                pr[j] = pred
                z[j] = 0.0
                if resvar[s] > 0.0:
                    z[j] = min(max((d[nf * j] - pred) / math.sqrt(resvar[s]), -50.0), 50.0)
                worst = max(worst, abs(z[j]))
            for j in range(k):
                s = slots[j]
                far_run[s] = far_run[s] + 1 if abs(z[j]) > clip else 0
            if worst > clip and k >= 3:
                for c in range(k):
                    # only a short excursion (a spike, two in a row): when a field stays off,
                    # the others are scored as they are (a fault that moves two of three
                    # fields must not be pinned on the third for longer than its start)
                    if far_run[slots[c]] <= max_lone and _explain_away(
                            c, k, nf, width, slots, beta, resvar, fmean, d, pr, z, alt, clip):
                        break
        for j in range(k):
            s = slots[j]
            c = count[s]
            if anchor[s] > 0 or not fitted:
                continue
            # one wild reading must not hold the level up: clip what the averages see
            zc = min(max(z[j], -10.0 * clip), 10.0 * clip)
            # the short average jumps up at once and decays slowly: an intermittent fault
            # (a connection that cuts out for minutes) keeps its level between its bursts
            if abs(zc) > abs(short[s]):
                short[s] += 0.5 * (zc - short[s])
            else:
                short[s] += alpha_short * (zc - short[s])
            long[s] += alpha_long * (zc - long[s])
            if c < warmup // 2:
                continue
            if c < warmup:
                # spreads of the averages: plain means over the second half of the warm-up
                av = 1.0 / (c - warmup // 2 + 1.0)
                short_var[s] += av * (short[s] * short[s] - short_var[s])
                long_var[s] += av * (long[s] * long[s] - long_var[s])
                if cusum_h > 0.0 and fast and c >= warmup // 2 + warmup // 8:
                    # the CUSUM's base learns over the rest of the warm-up (capped at 0, its
                    # sums stay at zero)
                    _cusum_add(cusum_hi, cusum_lo, cusum_base, s, short[s], z[j],
                               math.sqrt(max(short_var[s], short_floor)), cusum_k, 1.0,
                               0.0, a_base)
                continue
            short_sd = math.sqrt(max(short_var[s], short_floor))
            r_short = abs(short[s]) / short_sd
            long_sd = math.sqrt(max(long_var[s], long_floor))
            held = abs(long[s])
            if release > 0.0:
                # the long average holds a fault's level only while the recent residuals still
                # lean its way by more than ``release_lean`` of the short average's spreads
                # (noise around a relation that is back does not hold it): it counts at most
                # ``release`` of its spreads beyond that lean, so its memory of the fault lets go
                lean = short[s] if long[s] > 0.0 else -short[s]
                # (the lean's allowance only where the CUSUM runs, see ``fast``: on a device
                # read once a minute it delayed slow drifts' cases, by 2.8 h median on the fleet)
                allow = release_lean * short_sd if fast else 0.0
                held = min(held, max(lean - allow, 0.0) + release * long_sd)
            r_long = held / long_sd
            r_max = max(r_max, r_short, r_long * half_z / long_half_z)
            score = max(r_short * r_short / (r_short * r_short + h2),
                        r_long * r_long / (r_long * r_long + h2_long))
            if cusum_h > 0.0 and fast:
                # a sustained break of a few residual sigmas: two one-sided CUSUMs of the short
                # average in its own spreads (a sample adds what the average leans beyond
                # ``cusum_k`` spreads, at most ``_CUSUM_CLIP``, when its own residual leans the
                # same way by ``_CUSUM_GATE`` sigmas: one wild reading counts once although the
                # short average remembers it for a while; the spreads keep a field
                # that drifts through its warm-up, a motor warming, from counting), capped at
                # ``_CUSUM_CAP`` bars so that they let go within ~(cap - 1) h / k samples of
                # the relation's return.
                _cusum_add(cusum_hi, cusum_lo, cusum_base, s, short[s], z[j], short_sd,
                           cusum_k, cusum_h, _CUSUM_CAP * cusum_h, a_base)
                r_c = max(cusum_hi[s], cusum_lo[s]) / cusum_h
                r_max = max(r_max, r_c * half_z)
                score = max(score, r_c * r_c / (r_c * r_c + 1.0))
            level[s] = score
            out[i, j] = score
        # learn: plain means over the warm-up, then slowly; while the device looks anomalous
        # (a far-out sample, or averages far from normal) it teaches the baseline little
        weight = 1.0
        if worst > clip:
            weight = (clip / worst) ** 2
        if r_max > half_z:
            weight = min(weight, (half_z / r_max) ** 4)
        for j in range(k):
            s = slots[j]
            if anchor[s] > 0 or not fitted or count[s] < warmup:
                continue
            # the spreads learn slowly too, winsorised at two spreads: a fault that creeps
            # must not teach them that its residuals are normal
            av = alpha_var * weight
            short_var[s] += av * (min(short[s] * short[s], 4.0 * short_var[s]) / _WINSOR_MEAN
                                  - short_var[s])
            long_var[s] += av * (min(long[s] * long[s], 4.0 * long_var[s]) / _WINSOR_MEAN
                                 - long_var[s])
        for j in range(k):
            s = slots[j]
            c = count[s]
            count[s] = c + 1
            if anchor[s] > 0:
                for q in range(nf):
                    fmean[s, q] += anchor_alpha * d[nf * j + q]
                anchor[s] -= 1
                if anchor[s] == 0:
                    short[s] = 0.0
                    long[s] = 0.0
                    cusum_hi[s] = 0.0
                    cusum_lo[s] = 0.0
                    cusum_base[s] = 0.0
                continue
            ap = 1.0 / (c + 1.0) if c < warmup else alpha * weight
            for q in range(nf):
                dq = d[nf * j + q]
                for o in range(width):
                    fcov[s, q, o] = (1.0 - ap) * (fcov[s, q, o] + ap * dq * d[o])
                fmean[s, q] += ap * dq
        c0 = count[s0]
        if c0 >= 2 * width + 2 and c0 % refit == 0:
            _refit(fcov, beta, resvar, slots, k, ridge, a, low, rhs, sol, idx, full, pick,
                   select)


class Regression(SoADetector):
    """Per-device regression residual detector; each ``update`` call holds one device's fields.

    Half-lives are in samples: ``half_life`` for the means and covariances, ``lag_half_life``
    for the slow averages among the features, ``short_half_life`` and ``long_half_life`` for
    the two averages of the residual, ``spread_half_life`` for their spreads. ``half_z``: an
    average this many of its spreads away scores 0.5, twice that 0.8; the spreads count as at
    least ``short_floor`` and ``long_floor`` (in residual sigmas), so a model that fits a
    little worse at some hour does not alarm. ``clip``: residuals beyond this many sigma teach
    the baseline less. ``refit``: samples between refits of the regression. ``lag_clip`` and
    ``max_lone``: how a wild reading is kept in its own field; ``select`` (forward selection of
    the predictors, 0: all of them) and ``release`` (how far the long average may stay beyond
    the short one, in its spreads; 0: no limit): module docstring.
    """

    name: ClassVar[str] = "regression"
    _spec: ClassVar[dict[str, tuple[Any, tuple[int, ...], float]]] = {
        "fmean": (np.float64, (FEATURES_PER_FIELD,), 0.0),
        "fcov": (np.float64, (FEATURES_PER_FIELD, 8 * FEATURES_PER_FIELD), 0.0),
        "beta": (np.float64, (8 * FEATURES_PER_FIELD,), 0.0),
        "resvar": (np.float64, (), 0.0),
        "lag": (np.float64, (3,), 0.0),
        "far_run": (np.int64, (), 0),
        "count": (np.int64, (), 0),
        "short": (np.float64, (), 0.0),
        "long": (np.float64, (), 0.0),
        "short_var": (np.float64, (), 1.0),
        "long_var": (np.float64, (), 1.0),
        "level": (np.float64, (), 0.0),
        "anchor": (np.int64, (), 0),
        "cusum_hi": (np.float64, (), 0.0),
        "cusum_lo": (np.float64, (), 0.0),
        "cusum_base": (np.float64, (), 0.0),
        "cusum_t": (np.float64, (), -np.inf),
    }

    def __init__(self, capacity: int = 1024, half_life: float = 43200.0, warmup: int = 1440,
                 short_half_life: float = 5.0, long_half_life: float = 120.0,
                 spread_half_life: float = 43200.0, half_z: float = 4.5, clip: float = 4.0,
                 ridge: float = 0.01, max_fields: int = 8, anchor_samples: int = 120,
                 short_floor: float = 0.6, long_floor: float = 0.5,
                 lag_half_life: float = 15.0, refit: int = 30,
                 long_half_z: float = 5.0, lag_clip: float = 6.0, max_lone: int = 2,
                 select: float = 0.05, release: float = 2.0, cusum_k: float = 3.5,
                 cusum_h: float = 5.0, release_lean: float = 2.0,
                 cusum_base_half_life: float = 240.0) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.alpha_short = 1.0 - 0.5 ** (1.0 / short_half_life)
        self.alpha_long = 1.0 - 0.5 ** (1.0 / long_half_life)
        self.alpha_var = 1.0 - 0.5 ** (1.0 / spread_half_life)
        self.alpha_lag = 1.0 - 0.5 ** (1.0 / lag_half_life)
        self.warmup = warmup
        self.half_z = half_z
        self.clip = clip
        self.ridge = ridge
        self.max_fields = max_fields
        self.anchor_samples = anchor_samples
        self.anchor_alpha = 1.0 / (1.0 + anchor_samples / 4.0)
        self.short_floor = short_floor * short_floor
        self.long_floor = long_floor * long_floor
        self.refit = max(int(refit), 1)
        self.long_half_z = long_half_z
        self.lag_clip = lag_clip
        self.max_lone = max_lone
        self.select = select
        self.release = release
        self.cusum_k = cusum_k
        self.cusum_h = cusum_h
        self.release_lean = release_lean
        self.cusum_base_half_life = cusum_base_half_life
        super().__init__(capacity)

    def _trailing(self, name: str) -> tuple[int, ...]:
        width = self.max_fields * FEATURES_PER_FIELD
        if name == "fcov":
            return (FEATURES_PER_FIELD, width)
        if name == "beta":
            return (width,)
        return self._spec[name][1]

    def _run(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        out: NDArray[np.float64],
    ) -> None:
        a = self._arrays
        regression_update(a["fmean"], a["fcov"], a["beta"], a["resvar"], a["lag"], a["far_run"],
                          a["count"], a["short"], a["long"], a["short_var"], a["long_var"],
                          a["level"], a["anchor"], slots, x, out, self.alpha, self.alpha_short,
                          self.alpha_long, self.alpha_var, self.alpha_lag, self.warmup,
                          self.half_z, self.clip, self.ridge, self.anchor_alpha,
                          self.short_floor, self.long_floor, self.refit, self.long_half_z,
                          self.lag_clip, self.max_lone, self.select,
                          self.release, a["cusum_hi"], a["cusum_lo"], a["cusum_base"],
                          a["cusum_t"], _NO_TIME if t is None else t, self.cusum_k,
                          self.cusum_h, self.release_lean, self.cusum_base_half_life)

    def rebaseline(self, slots: NDArray[np.int64] | list[int]) -> None:
        """Re-learn the levels of these series over the next samples, keeping their relations.

        For a change that moves a baseline and is no fault (a firmware update's new control
        curve): the series stay silent while their means re-anchor.
        """
        s, _ = as_block(slots, np.zeros((0, len(slots))))
        self._ensure(s)
        self._arrays["anchor"][s] = self.anchor_samples
        self._arrays["level"][s] = 0.0
