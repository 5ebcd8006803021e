"""The detector ensemble the core service runs: every detector, one score, explained events.

Per block of samples of one device (or of many series), each statistical detector scores every
sample; their weighted maximum goes through the anomaly-likelihood stage and the onset filter,
so a series fires once at the start of an anomaly. Rule detectors (stuck, dropout, out of range)
fire through their own onset filter, without the likelihood stage. The returned score is the
fired score (0 where nothing fired); :meth:`Ensemble.last_findings` explains each firing.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = Ensemble()
>>> t = np.arange(3000) * 300.0
>>> x = rng.normal(50.0, 1.0, (3000, 1))
>>> _ = det.update([0], x[:2900], t[:2900])
>>> x[2950, 0] = 80.0                                        # a spike
>>> s = det.update([0], x[2900:], t[2900:])
>>> int(s.argmax()) + 2900, bool(s.max() > 0.9), int((s > 0).sum())   # one firing, at once
(2950, True, 1)
>>> f = det.last_findings()[0]
>>> f.row + 2900, f.column, f.detector
(2950, 0, 'extreme')
>>> f.explanation
'value 80 is further from its level than ever before (extreme level 0.92)'
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from core.detect._base import SoADetector, StateDict, as_block
from core.detect.cadence import Cadence
from core.detect.config import DetectorConfig
from core.detect.drift import Drift
from core.detect.dropout import Dropout
from core.detect.extreme import Extreme
from core.detect.field_level import FieldLevel
from core.detect.fleet_tail import fleet_tail
from core.detect.likelihood import AnomalyLikelihood
from core.detect.multivariate import Multivariate
from core.detect.onset import Onset, TimedOnset
from core.detect.out_of_range import OutOfRange
from core.detect.rate import RateOfChange
from core.detect.regression import Regression
from core.detect.robust_z import RobustZ
from core.detect.seasonal import Seasonal
from core.detect.stuck import Stuck
from core.detect.subspace import Subspace
from core.detect.transition import Transition
from core.detect.window_shape import WindowShape

__all__ = ["Ensemble", "Finding"]

#: the shortest a half-life scaled to a slow series' interval gets, as a share of the configured
#: one (a series sampled every 15 minutes or slower keeps a third of the samples; chosen on the
#: tuning half among 10, 50, 100, 167 and 250 samples, docs/detection.md "fifth round")
_LEAST_FACTOR = 1.0 / 3.0

_WHAT = {
    "level": "far from its learned level",
    "seasonal": "unusual for this time of day",
    "transition": "an unusual change of level",
    "rate_of_change": "an unusually fast change",
    "drift": "drifting away from its baseline",
    "multivariate": "out of step with the device's other fields",
    "regression": "off from what the device's other fields predict",
    "stuck": "stuck at one value",
    "dropout": "missing samples",
    "out_of_range": "beyond its configured limits",
    "extreme": "further from its level than ever before",
    "window_shape": "part of a stretch shaped unlike any it learned",
    "subspace": "unusual for this device (its level, its spread or its relation to the "
                "device's other fields)",
}

#: a narrow device's subspace finding (named ``stuck``): its one statistic is the lower tail
_NARROW_WHAT = "moving far less than it did (stuck, stopped or lost its signal)"

#: scratch arrays of the fleet path, one set per block shape
_FLEET_BUFFERS = ("x", "regression", "subspace", "stuck", "dropout", "out_of_range", "rule",
                  "rule_fired",
                  "likelihood", "drift", "level_fired", "fleet_final")


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fold_max(acc: NDArray[np.float64], score: NDArray[np.float64], weight: float,
              first: bool) -> None:
    """``acc = max(acc, weight·score)`` (or ``weight·score`` when ``first``), in one pass."""
    n, k = acc.shape
    if first:
        for j in range(k):  # acc is series-contiguous (Fortran order)
            for i in range(n):
                acc[i, j] = weight * score[i, j]
        return
    for j in range(k):
        for i in range(n):
            v = weight * score[i, j]
            a = acc[i, j]
            acc[i, j] = a if a > v else v


@numba.njit(cache=True, nogil=True)
def _mark_missing(raw: NDArray[np.float64], x: NDArray[np.float64]) -> None:
    """Set ``raw`` to NaN where the sample is missing, so the likelihood stage skips it."""
    n, k = x.shape
    for j in range(k):
        for i in range(n):
            if not math.isfinite(x[i, j]):
                raw[i, j] = math.nan


#: detector -> the config's half-life (in samples) that the series' interval scales
_TIMED_HALF_LIVES = {"level": "level_half_life", "seasonal": "level_half_life",
                     "transition": "transition_half_life"}


@contextmanager
def _half_life(det: SoADetector, half_life: float) -> Iterator[None]:
    """``det`` learns with ``half_life`` samples inside the block (its own restored after)."""
    if isinstance(det, Transition):
        saved, det.decay = det.decay, 0.5 ** (1.0 / half_life)
        try:
            yield
        finally:
            det.decay = saved
        return
    assert isinstance(det, RobustZ | Seasonal)
    saved, det.alpha = det.alpha, 1.0 - 0.5 ** (1.0 / half_life)
    try:
        yield
    finally:
        det.alpha = saved


@dataclass(frozen=True, slots=True)
class Finding:
    """One firing of the ensemble: where, which detector, how unusual, and why."""

    row: int
    column: int
    score: float
    detector: str
    value: float
    component_score: float
    explanation: str
    #: predicted time (seconds, or samples when no times were given) until a limit is crossed
    time_to_limit: float | None = None


class Ensemble:
    """All detectors over many series, combined into one onset score per sample.

    Call :meth:`update` once per block: ``slots`` (k,) int64, ``x`` (n_ticks, k) float64 with
    NaN for missing, ``t`` (n_ticks,) seconds (optional; the seasonal and dropout-gap detectors
    need it). The columns of one call should be one device's fields (the multivariate detector
    relates them to each other).
    """

    name = "ensemble"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        cfg = config or DetectorConfig()
        self.config = cfg
        cap = cfg.capacity
        self.statistical: dict[str, tuple[float, SoADetector]] = {
            "level": (cfg.level_weight, RobustZ(cap, cfg.level_half_life, cfg.warmup,
                                                cfg.level_clip, cfg.half_z)),
            "seasonal": (cfg.seasonal_weight, Seasonal(
                cap, cfg.seasonal_bins, cfg.seasonal_period_s, cfg.seasonal_bin_half_life,
                cfg.level_half_life, 3, cfg.seasonal_resid_floor, cfg.half_z)),
            "transition": (cfg.transition_weight, Transition(
                cap, cfg.transition_bins, cfg.transition_half_life)),
            "rate_of_change": (cfg.rate_weight, RateOfChange(cap, cfg.level_half_life, 30,
                                                             4.0, cfg.half_z)),
            "drift": (cfg.drift_weight, Drift(cap, warmup=cfg.warmup,
                                              trend_only=cfg.drift_weight <= 0.0)),
            "multivariate": (cfg.multivariate_weight, Multivariate(cap, half_z=cfg.half_z)),
            "regression": (cfg.regression_weight, Regression(
                cap, cfg.regression_half_life, cfg.regression_warmup,
                cfg.regression_short_half_life, cfg.regression_long_half_life,
                half_z=cfg.regression_half_z, short_floor=cfg.regression_short_floor,
                long_floor=cfg.regression_long_floor,
                long_half_z=cfg.regression_long_half_z, select=cfg.regression_select,
                release=cfg.regression_release, cusum_k=cfg.regression_cusum_k,
                cusum_h=cfg.regression_cusum_h,
                release_lean=cfg.regression_release_lean,
                cusum_base_half_life=cfg.regression_cusum_base_half_life_s)),
        }
        self.extremes = [Extreme(cap, cfg.extreme_half_life, cfg.warmup, cfg.extreme_margin,
                                 cfg.extreme_z_min, smooth) for smooth in cfg.extreme_smoothing]
        self.subspace = Subspace(
            cap, warmup=cfg.regression_warmup, half_life=cfg.subspace_half_life,
            calibration_half_life=cfg.subspace_half_life, scales=cfg.subspace_scales,
            var_frac=cfg.subspace_var_frac, field_level=cfg.subspace_field_level,
            joint_min_fields=cfg.subspace_joint_min_fields, sd_floor=cfg.subspace_sd_floor,
            target_per_month=cfg.target_false_alarms_per_device_month)
        # window shape novelty: built only when weighted (its categories cost ~8 kB a series)
        self.window_shape: WindowShape | None = None
        self._shape_raw = cfg.window_shape_raw_weight > 0.0
        if cfg.window_shape_weight > 0.0 or self._shape_raw:
            # graded (held every sample) for the raw path; novel windows only for the onset
            self.window_shape = WindowShape(
                cap, cfg.window_shape_step, cfg.window_shape_width, cfg.window_shape_categories,
                cfg.warmup, cfg.window_shape_learn, cfg.window_shape_vigilance,
                shape_floor=cfg.window_shape_floor, mask=cfg.window_shape_mask,
                chomp=cfg.window_shape_chomp, z=cfg.window_shape_z, hold=self._shape_raw)
        # each series' first time step: sample-count half-lives that mean a time (fifth round)
        self.cadence = Cadence(cap)
        self._timed = cfg.half_life_interval_s > 0.0
        self.range = OutOfRange(cap)
        self.rules: dict[str, SoADetector] = {
            "stuck": Stuck(cap, cfg.stuck_factor),
            "dropout": Dropout(cap, cfg.dropout_factor, warmup=min(cfg.warmup, 100)),
            "out_of_range": self.range,
        }
        self.likelihood = AnomalyLikelihood(cap, cfg.likelihood_window,
                                            cfg.likelihood_half_life, cfg.likelihood_warmup,
                                            cfg.likelihood_mean_floor, cfg.likelihood_var_floor,
                                            cfg.warmup if cfg.likelihood_after_warmup else 0)
        self.likelihood_short = AnomalyLikelihood(
            cap, max(cfg.likelihood_short_window, 1), cfg.likelihood_half_life,
            cfg.likelihood_warmup,
            cfg.likelihood_mean_floor, cfg.likelihood_var_floor,
            cfg.warmup if cfg.likelihood_after_warmup else 0)
        self._short = cfg.likelihood_short_window > 0 and cfg.likelihood_short_weight > 0.0
        if cfg.quiet_s > 0.0 and cfg.boost == 0.0 and cfg.calm_scale == 0.0 and cfg.rearm == 0:
            self.onset: Onset = TimedOnset(cap, cfg.fire, cfg.quiet, cfg.quiet_s, cfg.quiet_min,
                                           cfg.onset_rank_memory, cfg.onset_rank_prior,
                                           cfg.onset_rank_ceiling)
        else:
            self.onset = Onset(cap, cfg.fire, cfg.quiet, cfg.calm_scale, cfg.boost,
                               cfg.bar_half_life, cfg.rearm, cfg.onset_rank_memory,
                               cfg.onset_rank_prior, cfg.onset_rank_ceiling)
        # a rule's condition (stuck, silent, out of range) holds while the fault lasts: it fires
        # again only after the condition cleared
        self.rule_onset = Onset(cap, cfg.rule_fire, cfg.level_quiet, cfg.calm_scale,
                                rearm=max(cfg.rearm, 1))
        self.level_onset = Onset(cap, cfg.level_fire, cfg.level_quiet)
        self.field_level = FieldLevel(cap, cfg.target_false_alarms_per_device_month,
                                      cfg.extreme_weight, cfg.likelihood_window,
                                      cfg.field_level_weight)
        # a level per field (what rules hold) when any stage gives one; else onsets only
        self._has_level = (cfg.regression_weight > 0.0 or cfg.subspace_weight > 0.0
                           or cfg.field_level_weight > 0.0)
        # a relations-only configuration (the regression's level the only statistical score)
        # takes a path that skips the stages it zeroes anyway and checks capacity once per block
        self._fleet_only = (cfg.regression_weight > 0.0 and cfg.field_level_weight <= 0.0
                            and cfg.extreme_weight <= 0.0) and not any(
            weight > 0.0 for name, (weight, _) in self.statistical.items() if name != "regression")
        self._fleet_parts: list[SoADetector] = [
            self.statistical["regression"][1], self.statistical["drift"][1], self.subspace,
            *self.rules.values(), self.rule_onset, self.level_onset]
        self._fleet_capacity = 0
        self._no_t = np.zeros(0)
        self._fleet_bufs: dict[tuple[int, ...], dict[str, NDArray[np.float64]]] = {}
        self._findings: tuple[Finding, ...] = ()
        self._components: dict[str, NDArray[np.float64]] = {}
        self._work: dict[str, NDArray[np.float64]] = {}
        self._level: NDArray[np.float64] | None = None

    # -- the service's call ------------------------------------------------------------------
    def update(
        self,
        slots: NDArray[np.int64] | list[int],
        x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Score then learn a block; returns fired scores in [0, 1] of shape (n_ticks, k)."""
        s, v_rows = as_block(slots, x)
        tt = None if t is None else np.ascontiguousarray(t, dtype=np.float64)
        wide = v_rows.shape[1] > self.config.field_level_max_fields
        if v_rows.size and (self._fleet_only or (wide and self.config.regression_weight > 0.0)):
            # no per-field stage runs (a relations-only config, or a device too wide for them)
            return self._update_fleet(s, v_rows, tt)
        # the kernels that walk one series at a time read it contiguous (one transpose per block)
        v = self._buf("x", v_rows.shape, "F")
        v[...] = v_rows
        comps: dict[str, NDArray[np.float64]] = {}
        raw = self._buf("raw", v.shape, "F")
        first = True
        factors: NDArray[np.float64] | None = None
        if self._timed:
            # learnt before the detectors run: a series' step comes from its first two rows,
            # which none of the scaled half-lives has taught anything yet (cadence.py)
            factors = self.cadence.learn_factors(s, tt, self.config.half_life_interval_s,
                                                 _LEAST_FACTOR)
        for name, (weight, det) in self.statistical.items():
            if weight <= 0.0:
                if name == "drift":  # its trend still predicts the time to a limit
                    det._update_block(s, v, tt, out=self._buf(name, v.shape, "F"))
                continue
            row_wise = isinstance(det, RobustZ | Multivariate)  # these walk a tick at a time
            src = v_rows if row_wise else v
            buf = self._buf(name, v.shape, "C" if row_wise else "F")
            if factors is not None and name in _TIMED_HALF_LIVES:
                sc = self._update_timed(name, det, s, src, tt, buf, factors, row_wise)
            else:
                sc = det._update_block(s, src, tt, out=buf)
            comps[name] = sc
            if name != "regression":  # a device model: its own level, not a per-field score
                _fold_max(raw, sc, weight, first)
                first = False
        if self.window_shape is not None and self._shape_raw:
            shape = self.window_shape._update_block(
                s, v, tt, out=self._buf("window_shape", v.shape, "F"))
            comps["window_shape"] = shape
            _fold_max(raw, shape, self.config.window_shape_raw_weight, first)
            first = False
        if first:
            raw[...] = 0.0
        _mark_missing(raw, v)
        per_field = not first or self.config.extreme_weight > 0.0
        if per_field and not first:
            likelihood = self.likelihood._update_block(s, raw, None,
                                                       out=self._buf("likelihood", v.shape, "F"))
        else:
            likelihood = self._buf("likelihood", v.shape, "F")
            likelihood[...] = 0.0
        candidate = likelihood
        if self._short and per_field and not first:
            # a few samples' anomaly on a series whose raw scores are often high: the onset
            # score (not the field's level) also fires on the likelihood of a shorter window
            short = self.likelihood_short._update_block(
                s, raw, None, out=self._buf("likelihood_short", v.shape, "F"))
            comps["likelihood_short"] = short
            candidate = self._buf("candidate", v.shape, "F")
            candidate[...] = likelihood
            _fold_max(candidate, short, self.config.likelihood_short_weight, False)
        ext: NDArray[np.float64] | None = None
        if self.config.extreme_weight > 0.0:
            # record-breaking values are precise enough to skip the likelihood stage
            ext = self._buf("extreme", v.shape, "F")
            for k, det in enumerate(self.extremes):
                sc = det._update_block(s, v, tt, out=self._buf(f"extreme{k}", v.shape, "F"))
                _fold_max(ext, sc, 1.0, k == 0)
            comps["extreme"] = ext
            if candidate is likelihood:
                candidate = self._buf("candidate", v.shape, "F")
                candidate[...] = likelihood
            _fold_max(candidate, ext, self.config.extreme_weight, False)
        if self.window_shape is not None and per_field and not self._shape_raw:
            # a stretch shaped unlike every learned one fires the onset directly, as a record
            shape = self.window_shape._update_block(s, v, tt,
                                                    out=self._buf("window_shape", v.shape, "F"))
            comps["window_shape"] = shape
            if candidate is likelihood:
                candidate = self._buf("candidate", v.shape, "F")
                candidate[...] = likelihood
            _fold_max(candidate, shape, self.config.window_shape_weight, False)
        if per_field:
            fired = self.onset._update_block(s, candidate, tt,
                                             out=self._buf("fired", v.shape, "F"))
        else:
            fired = self._buf("fired", v.shape, "F")
            fired[...] = 0.0
        rule = self._buf("rule", v.shape, "F")
        for k, (name, det) in enumerate(self.rules.items()):
            use_t = name != "dropout" or self.config.dropout_time_gaps
            sc = det._update_block(s, v, tt if use_t else None, out=self._buf(name, v.shape, "F"))
            comps[name] = sc
            _fold_max(rule, sc, 1.0, k == 0)
        rule_fired = self.rule_onset._update_block(s, rule, None,
                                                   out=self._buf("rule_fired", v.shape, "F"))
        comps["likelihood"] = likelihood
        sub: NDArray[np.float64] | None = None
        k = v.shape[1]
        if self.config.subspace_weight > 0.0 and (
                k <= self.config.field_level_max_fields or k >= self.config.subspace_min_fields):
            sub = self.subspace._update_block(s, v, tt, out=self._buf("subspace", v.shape, "F"))
            comps["subspace"] = sub
            if self.config.subspace_weight != 1.0:
                sub = self.config.subspace_weight * sub
        if self.config.field_level_weight > 0.0 and (per_field or sub is not None):
            # each field's own calibrated level and the subspace stage's, held together
            field = self._buf("field", v.shape, "F")
            self.field_level.levels(s, likelihood, ext, sub, tt, field)
            comps["field"] = field
        self._components = comps
        # the caller keeps this one: never a reused buffer (series-contiguous like the rest)
        final = np.empty(v.shape, order="F")
        np.maximum(fired, rule_fired, out=final)
        if self._has_level:
            self._fleet_level(s, v, tt, comps, rule_fired)
        else:
            self._level = None
            self._findings = self._explain(s, v, tt, final, fired, comps) if final.any() else ()
        return final

    def _update_timed(
        self, name: str, det: SoADetector, s: NDArray[np.int64], src: NDArray[np.float64],
        tt: NDArray[np.float64] | None, buf: NDArray[np.float64],
        factors: NDArray[np.float64], row_wise: bool,
    ) -> NDArray[np.float64]:
        """``det`` over the block with its half-life times each column's factor (columns with
        the same factor in one call; one device's fields share their times, so one call)."""
        configured = getattr(self.config, _TIMED_HALF_LIVES[name])
        groups = np.unique(factors)
        if groups.size == 1:
            with _half_life(det, configured * float(groups[0])):
                return det._update_block(s, src, tt, out=buf)
        for f in groups.tolist():
            cols = np.flatnonzero(factors == f)
            part = src[:, cols]
            part = np.ascontiguousarray(part) if row_wise else np.asfortranarray(part)
            with _half_life(det, configured * f):
                buf[:, cols] = det._update_block(s[cols], part, tt)
        return buf

    # -- the fleet's level -------------------------------------------------------------------
    def _update_fleet(self, s: NDArray[np.int64], v_rows: NDArray[np.float64],
                      tt: NDArray[np.float64] | None) -> NDArray[np.float64]:
        """:meth:`update` for a relations-only configuration, with what the general path gives.

        The general path computes the likelihood, onset and raw-score stages and zeroes them
        for the fleet; this one skips them, checks the detectors' capacity once per block
        instead of once per detector, and keeps one set of scratch arrays per block shape.
        ``tests/unit/test_ensemble_fleet_path.py`` holds the two paths to the same bits.
        """
        shape = v_rows.shape
        b = self._fleet_bufs.get(shape)
        if b is None:
            if len(self._fleet_bufs) >= 16:  # batch lengths vary; keep the few recent ones
                self._fleet_bufs.clear()
            b = {name: np.empty(shape, order="F") for name in _FLEET_BUFFERS}
            b["likelihood"][...] = 0.0  # never written: the fleet has no likelihood stage
            self._fleet_bufs[shape] = b
        v = b["x"]
        v[...] = v_rows
        if int(s.max()) >= self._fleet_capacity:
            for part in self._fleet_parts:
                part._ensure(s)
            self._fleet_capacity = min(part.capacity for part in self._fleet_parts)
        regression = b["regression"]
        self.statistical["regression"][1]._run(s, v, tt, regression)
        comps = {"regression": regression, "likelihood": b["likelihood"]}
        has_sub = self.config.subspace_weight > 0.0 and shape[1] >= self.config.subspace_min_fields
        if has_sub:
            self.subspace._run(s, v, tt, b["subspace"])
            comps["subspace"] = b["subspace"]
        for name in self.rules:
            comps[name] = b[name]
        self._components = comps
        # the caller keeps the level and the returned scores: never reused buffers
        level = np.empty(shape, order="F")
        final = np.empty(shape, order="F")
        fired = b["fleet_final"]
        args: tuple[Any, ...] = (
            s, v, self._no_t if tt is None else tt, tt is not None,
            tt is not None and self.config.dropout_time_gaps, regression,
            self.config.regression_weight, b["subspace"], self.config.subspace_weight, has_sub,
            *self._tail_stuck_args(), b["stuck"], *self._tail_dropout_args(), b["dropout"],
            *self._tail_range_args(), b["out_of_range"], *self._tail_onset_args(self.rule_onset),
            b["rule"], b["rule_fired"], *self._tail_drift_args(), b["drift"],
            *self._tail_onset_args(self.level_onset), level, b["level_fired"], fired, final)
        any_fired = bool(fleet_tail(*args))
        self._level = level
        self._findings = (self._fleet_findings(s, v, comps, b["level_fired"], fired)
                          if any_fired else ())
        return final

    def _tail_stuck_args(self) -> tuple[Any, ...]:
        det = self.rules["stuck"]
        assert isinstance(det, Stuck)
        a = det._arrays
        return (a["last"], a["run"], a["longest"], a["changes"], det.factor, det.min_run,
                det.min_changes)

    def _tail_dropout_args(self) -> tuple[Any, ...]:
        det = self.rules["dropout"]
        assert isinstance(det, Dropout)
        a = det._arrays
        return (a["missing"], a["longest"], a["count"], a["last_t"], a["interval"], det.factor,
                det.min_gap, det.warmup)

    def _tail_range_args(self) -> tuple[Any, ...]:
        a = self.range._arrays
        return a["lo"], a["hi"]

    @staticmethod
    def _tail_onset_args(det: Onset) -> tuple[Any, ...]:
        a = det._arrays
        return (a["since"], a["calm"], a["bar"], a["past"], a["n_past"], det.fire, det.quiet,
                det.calm_scale, det.boost, det.bar_decay, det.rearm, det.rank_prior,
                det.rank_ceiling)

    def _tail_drift_args(self) -> tuple[Any, ...]:
        det = self.statistical["drift"][1]
        assert isinstance(det, Drift)
        a = det._arrays
        return (a["mean"], a["spread"], a["count"], a["up"], a["down"], a["level"], a["slope"],
                a["last_t"], det.alpha, det.fast, det.warmup, det.delta, det.threshold,
                det.trend_only)

    def _fleet_level(
        self, s: NDArray[np.int64], v: NDArray[np.float64], tt: NDArray[np.float64] | None,
        comps: dict[str, NDArray[np.float64]], rule_fired: NDArray[np.float64],
    ) -> None:
        # the regression residual and the configured limits give a level that holds while a
        # fault lasts; its onsets (and the rule detectors') are the findings
        cfg = self.config
        level = self._buf("field_levels", v.shape, "F")
        level[...] = comps["out_of_range"]
        if "regression" in comps:
            _fold_max(level, comps["regression"], cfg.regression_weight, False)
        if "field" in comps:  # with the subspace stage's level in it
            _fold_max(level, comps["field"], 1.0, False)
        elif "subspace" in comps:
            _fold_max(level, comps["subspace"], cfg.subspace_weight, False)
        self._level = level.copy(order="F")  # the caller keeps it
        level_fired = self.level_onset._update_block(
            s, level, None, out=self._buf("level_fired", v.shape, "F"))
        final = np.maximum(level_fired, rule_fired, out=self._buf("fleet_final", v.shape, "F"))
        self._findings = self._fleet_findings(s, v, comps, level_fired, final)

    def _fleet_findings(
        self, s: NDArray[np.int64], v: NDArray[np.float64],
        comps: dict[str, NDArray[np.float64]], level_fired: NDArray[np.float64],
        final: NDArray[np.float64],
    ) -> tuple[Finding, ...]:
        if not final.any():
            return ()
        drift = self.statistical["drift"][1]
        assert isinstance(drift, Drift)
        lo, hi = self.range.limits(s)
        ttl = drift.time_to_limit(s, lo, hi)
        out: list[Finding] = []
        for i, j in zip(*np.nonzero(final), strict=True):
            names = ([n for n in ("regression", "subspace", "field", "out_of_range") if n in comps]
                     if level_fired[i, j] > 0 else list(self.rules))
            best = max(names, key=lambda n: float(comps[n][i, j]))
            c, value = float(comps[best][i, j]), float(v[i, j])
            if best == "field":  # name the detector that scored it
                best = self._field_detector(comps, int(i), int(j))
            what = _WHAT[best]
            if best == "subspace" and 2 <= v.shape[1] < self.config.subspace_joint_min_fields:
                # a narrow device's subspace level is one statistic: a field moving far less
                # than it did, the stuck detector's finding come early (its rules, not the
                # circuits' customer notices, take it: a stuck sensor is no fault the customer
                # sees)
                best, what = "stuck", _NARROW_WHAT
            out.append(Finding(
                row=int(i), column=int(j), score=float(final[i, j]), detector=best,
                value=value, component_score=c,
                time_to_limit=float(ttl[j]) if np.isfinite(ttl[j]) else None,
                explanation=f"value {value:.6g} is {what} ({best} level {c:.2f})"))
        return tuple(out)

    def _field_detector(self, comps: dict[str, NDArray[np.float64]], i: int, j: int) -> str:
        """The per-field detector behind a field's own level at ``(i, j)``."""
        cfg = self.config
        field = comps["field"][i, j]
        if "extreme" in comps and cfg.extreme_weight * comps["extreme"][i, j] >= field:
            return "extreme"
        if "subspace" in comps and cfg.subspace_weight * comps["subspace"][i, j] >= 0.5 * field:
            return "subspace"
        weights = {n: w for n, (w, _) in self.statistical.items()
                   if w > 0.0 and n != "regression" and n in comps}
        if self._shape_raw:  # one of the raw scores the likelihood saw
            weights["window_shape"] = cfg.window_shape_raw_weight
        if not weights:
            return "extreme"
        return max(weights, key=lambda n: weights[n] * float(comps[n][i, j]))

    def last_level(self) -> NDArray[np.float64] | None:
        """Continuous anomaly level in [0, 1] of every sample and field of the last block.

        Unlike :meth:`update`'s onset scores it stays high while an anomaly lasts, which is
        what rules with a duration need: the largest of each field's own calibrated level, the
        regression residual's, the subspace stage's and the configured limits'. None when the
        configuration has none of them (``DetectorConfig.nab_reference()`` scores onsets only).
        """
        return self._level

    def rebaseline(self, slots: NDArray[np.int64] | list[int]) -> None:
        """Re-learn these series' levels, e.g. after a firmware update.

        The regression keeps its relations and re-anchors its means; the subspace model, whose
        mean, spread and calibration a new baseline would all move, learns the device again
        (one ``regression_warmup``).
        """
        reg = self.statistical["regression"][1]
        if isinstance(reg, Regression):
            reg.rebaseline(slots)
        s = np.asarray(slots, dtype=np.int64)
        self.subspace._ensure(s)
        self.subspace.forget(s)

    def _buf(self, name: str, shape: tuple[int, ...], order: str) -> NDArray[np.float64]:
        """A scratch array reused from block to block (fresh pages cost more than the maths)."""
        arr = self._work.get(name)
        fits = arr is not None and arr.shape == shape and (
            arr.flags.f_contiguous if order == "F" else arr.flags.c_contiguous)
        if arr is None or not fits:
            arr = np.empty(shape, order="F" if order == "F" else "C")
            self._work[name] = arr
        return arr

    # -- explanations ------------------------------------------------------------------------
    def last_findings(self) -> tuple[Finding, ...]:
        """Firings of the last :meth:`update`, in row order, each explained."""
        return self._findings

    def last_components(self) -> dict[str, NDArray[np.float64]]:
        """Every detector's score of the last block (and the likelihood), by name.

        The arrays are scratch buffers: valid until the next :meth:`update`; copy to keep.
        """
        return self._components

    def _explain(
        self, slots: NDArray[np.int64], x: NDArray[np.float64], t: NDArray[np.float64] | None,
        final: NDArray[np.float64], fired: NDArray[np.float64],
        comps: dict[str, NDArray[np.float64]],
    ) -> tuple[Finding, ...]:
        out: list[Finding] = []
        drift = self.statistical["drift"][1]
        assert isinstance(drift, Drift)
        lo, hi = self.range.limits(slots)
        ttl = drift.time_to_limit(slots, lo, hi)
        rows, cols = np.nonzero(final)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if fired[i, j] > 0.0:
                names = [n for n, (w, _) in self.statistical.items() if w > 0.0]
                weights = {n: self.statistical[n][0] for n in names}
                if self._shape_raw:  # one of the raw scores the likelihood saw
                    names.append("window_shape")
                    weights["window_shape"] = self.config.window_shape_raw_weight
            else:
                names = list(self.rules)
                weights = dict.fromkeys(names, 1.0)
            best = max(names, key=lambda n: weights[n] * comps[n][i, j])
            if "extreme" in comps and fired[i, j] > 0.0 and (
                    self.config.extreme_weight * comps["extreme"][i, j]
                    >= comps["likelihood"][i, j]):
                best = "extreme"
            if not self._shape_raw and "window_shape" in comps and fired[i, j] > 0.0 and (
                    self.config.window_shape_weight * comps["window_shape"][i, j]
                    >= max(comps["likelihood"][i, j],
                           self.config.extreme_weight * comps["extreme"][i, j]
                           if "extreme" in comps else 0.0)):
                best = "window_shape"
            column = j
            if best == "multivariate":  # blame the field that is most out of step
                column = int(np.argmax(comps["multivariate"][i]))
            c = float(comps[best][i, column])
            left = float(ttl[column]) if np.isfinite(ttl[column]) else None
            value = float(x[i, column])
            out.append(Finding(
                row=i, column=column, score=float(final[i, j]), detector=best, value=value,
                component_score=c, time_to_limit=left,
                explanation=(f"value {value:.6g} is {_WHAT[best]} "
                             f"({best} score {c:.2f}, likelihood "
                             f"{float(comps['likelihood'][i, j]):.2f})"),
            ))
        return tuple(out)

    # -- checkpoints -------------------------------------------------------------------------
    def _parts(self) -> dict[str, SoADetector]:
        parts: dict[str, SoADetector] = {n: d for n, (_, d) in self.statistical.items()}
        parts.update(self.rules)
        parts.update({f"extreme{k}": det for k, det in enumerate(self.extremes)})
        parts["likelihood"] = self.likelihood
        if self._short:
            parts["likelihood_short"] = self.likelihood_short
        if self._timed:
            parts["cadence"] = self.cadence
        parts["onset"] = self.onset
        parts["rule_onset"] = self.rule_onset
        parts["level_onset"] = self.level_onset
        parts["subspace"] = self.subspace
        parts["field_level"] = self.field_level
        if self.window_shape is not None:
            parts["window_shape"] = self.window_shape
        return parts

    def forget(self, slots: NDArray[np.int64]) -> None:
        """Reset these slots in every detector (a freed slot given to a new series)."""
        for det in self._parts().values():
            det.forget(slots)

    def state(self) -> StateDict:
        """Copy of every detector's state, flattened as ``"detector.array"`` keys."""
        return {f"{p}.{k}": v for p, det in self._parts().items() for k, v in det.state().items()}

    def load_state(self, state: StateDict) -> None:
        """Restore what :meth:`state` returned (built with the same config)."""
        for p, det in self._parts().items():
            prefix = p + "."
            det.load_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    @classmethod
    def from_state(cls, state: StateDict, **params: Any) -> Ensemble:
        """An ensemble built with ``DetectorConfig(**params)`` that continues from a checkpoint."""
        det = cls(DetectorConfig(**params))
        det.load_state(state)
        return det

    def bytes_per_series(self) -> int:
        """Bytes of state one series slot costs, over all detectors."""
        return sum(det.bytes_per_series() for det in self._parts().values())

    def score_many(
        self, slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Score a block as :meth:`update` would, leaving the learned state unchanged."""
        saved = self.state()
        try:
            return self.update(slots, x, t)
        finally:
            self.load_state(saved)

    def learn_many(
        self, slots: NDArray[np.int64] | list[int], x: NDArray[np.float64] | list[list[float]],
        t: NDArray[np.float64] | None = None,
    ) -> None:
        """Learn a block, discarding its scores."""
        self.update(slots, x, t)
