"""Configuration of the detector ensemble: one default for every device and every benchmark.

``DetectorConfig()`` is what the core service, ``forewarn score``, ``forewarn nab`` and
``forewarn sim evaluate`` run: per-field detectors (level, time of day, changes of level and
of spread, records) and the device models over all of a device's fields (regression residual,
streaming subspace), combined into one calibrated level per field. Constants chosen by looking
at results were chosen on fixed tuning halves of the data (docs/detection.md) and checked on
the other halves. :func:`make_detector` is the one place that turns a config into a detector.
:meth:`DetectorConfig.nab_reference` is the earlier single-series NAB tuning, kept only to
compare with.

>>> det = make_detector(DetectorConfig())
>>> det.update([0], [[1.0], [2.0]]).shape
(2, 1)
>>> DetectorConfig(quiet=10).quiet
10
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from core.detect.ensemble import Ensemble

__all__ = ["DetectorConfig", "make_detector"]


class DetectorConfig(BaseModel):
    """Every knob of the ensemble; half-lives and periods in samples unless they say seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity: int = Field(1024, ge=1, description="initial series slots (grows on demand)")
    warmup: int = Field(300, ge=0, description="samples a new series' per-field detectors learn "
                        "before they may fire (the device models: regression_warmup)")
    half_z: float = Field(3.0, gt=0, description="z at which a z-type component scores 0.5")

    level_weight: float = Field(1.0, ge=0, le=1)
    level_half_life: float = Field(500.0, gt=0)
    level_clip: float = Field(3.0, gt=0)

    seasonal_weight: float = Field(1.0, ge=0, le=1)
    seasonal_bins: int = Field(96, ge=1, description="time-of-day bins per period")
    seasonal_period_s: float = Field(86400.0, gt=0)
    seasonal_bin_half_life: float = Field(5.0, gt=0, description="in visits of the bin")
    seasonal_resid_floor: float = Field(0.2, ge=0)

    transition_weight: float = Field(1.0, ge=0, le=1)
    transition_bins: int = Field(12, ge=3)
    transition_half_life: float = Field(500.0, gt=0)
    half_life_interval_s: float = Field(
        300.0, ge=0, description="the sample interval `level_half_life` and "
        "`transition_half_life` (in samples) were chosen at: a series whose first time step is "
        "longer learns its level, spread and transitions over proportionally fewer samples, as "
        "long in time (never more samples than configured, nor fewer than a third); 0 = "
        "sample counts for every series (docs/detection.md, fifth round)")

    window_shape_weight: float = Field(
        0.0, ge=0, le=1, description="weight of the window shape novelty (fuzzy ART over "
        "down-sampled windows, `window_shape.py`) in the onset score of one-field devices "
        "(unused while `window_shape_raw_weight` > 0); 0 = off, the default: on NAB it did not "
        "raise the held-out half (docs/detection.md, window shape novelty)")
    window_shape_raw_weight: float = Field(
        0.0, ge=0, le=1, description="weight of its graded score (how far each window's best "
        "match falls below the series' bar, held between windows) among the raw scores the "
        "likelihood stage calibrates; 0 = off, the default (the held-out half: 68.06 → 67.61)")
    # the knobs below: the raw candidate's values (the tuning half's best), so that
    # `window_shape_raw_weight = 0.4` alone is the configuration docs/detection.md measures
    window_shape_step: int = Field(5, ge=1, description="samples per down-sampled point")
    window_shape_width: int = Field(8, ge=2, description="down-sampled points per window")
    window_shape_categories: int = Field(64, ge=1, description="categories per series")
    window_shape_vigilance: float = Field(0.85, gt=0, lt=1, description="match a window needs "
                                          "to join a category")
    window_shape_learn: int = Field(450, ge=0, description="samples before it scores (the "
                                    "range it normalises by: the first `warmup` samples)")
    window_shape_floor: float = Field(0.1, ge=0, description="least span a window's shape is "
                                      "normalised by, as a share of the learned range")
    window_shape_chomp: float = Field(0.075, ge=0, description="a down-sampled point this "
                                      "near (share of the range) the points' median is it")
    window_shape_z: float = Field(2.5, gt=0, description="a window is novel when its best "
                                  "match is this many spreads below the series' usual one")
    window_shape_mask: int = Field(0, ge=0, description="down-sampled points without a new "
                                   "category before a new one scores again")

    rate_weight: float = Field(0.0, ge=0, le=1)
    drift_weight: float = Field(0.0, ge=0, le=1)
    multivariate_weight: float = Field(0.0, ge=0, le=1, description="the sign-aligned "
                                       "regression; the device models relate fields now")

    extreme_weight: float = Field(1.0, ge=0, le=1)
    extreme_half_life: float = Field(2000.0, gt=0)
    extreme_margin: float = Field(1.2, ge=1)
    extreme_z_min: float = Field(5.0, gt=0)
    extreme_smoothing: tuple[float, ...] = Field(
        (0.0, 5.0), description="EWMA half-lives the records are kept on (0 = raw samples)")

    likelihood_window: int = Field(30, ge=1)
    likelihood_after_warmup: bool = Field(
        True, description="the likelihood stage learns the raw score's distribution only once "
        "the detectors feeding it are past `warmup` (before, they score 0 and the zeros make "
        "the first real scores look unusual), then learns `likelihood_warmup` samples before it "
        "scores")
    likelihood_warmup: int = Field(
        150, ge=0, description="samples the likelihood stage learns (after `warmup` with "
        "`likelihood_after_warmup`) before it scores: with 300 a series was 600 samples old "
        "before its first likelihood score, 45 % of a 1,344-row file")
    likelihood_short_window: int = Field(
        10, ge=0, description="a second likelihood over this many raw scores (0 = off): an "
        "anomaly of a few samples on a series whose raw scores are often high moves a "
        "30-sample mean too little; only the onset score `update` returns uses it, not the "
        "field's level")
    likelihood_short_weight: float = Field(
        0.35, ge=0, le=1, description="the short likelihood's weight before the onset filter "
        "(0.35: it fires at 0.12 / 0.35 ≈ 0.34, a rarer tail than the long one's 0.12)")
    likelihood_half_life: float = Field(4000.0, gt=0)
    likelihood_mean_floor: float = Field(0.0, ge=0, description="lower bound of the mean")
    likelihood_var_floor: float = Field(
        0.01, gt=0, description="lower bound of the variance of the windowed mean raw score "
        "(HTM bounds it too): a calm series must stir visibly before it fires")
    boost: float = Field(0.0, ge=0, description="alarm bar each firing adds (0 = off)")
    bar_half_life: float = Field(2000.0, gt=0)
    fire: float = Field(0.12, gt=0, le=1, description="likelihood score that fires an event")
    quiet: int = Field(200, ge=0, description="samples a series' onset score stays quiet "
                       "after firing (the score `update` returns, NAB's)")
    quiet_s: float = Field(
        60000.0, ge=0, description="the onset quiet period as a time (s): `quiet_s` over the "
        "series' learned sample interval, between `quiet_min` and `quiet` samples (60,000 s = "
        "200 samples of 5 minutes; 0 = `quiet` samples; needs `t`, and `boost`, `calm_scale` "
        "and `rearm` at 0)")
    quiet_min: int = Field(60, ge=0, description="fewest samples of a timed quiet period")
    level_quiet: int = Field(1440, ge=0, description="samples a field's level (and a rule "
                             "detector) gives no new finding after one")
    field_level_weight: float = Field(
        1.0, ge=0, le=1, description="weight of each field's own calibrated level (from the "
        "per-field detectors) in the level; 0: relations and limits only")
    field_level_max_fields: int = Field(
        1, ge=0, description="devices with at most this many fields run the per-field "
        "detectors and get their level; wider devices are judged by the device models (whose "
        "step statistic sees each field's spread): on the simulated fleet the per-field level "
        "of multi-field devices opened 53 false cases where there had been 3 (seed 1)")
    rearm: int = Field(0, ge=0, description="samples below `fire` needed before firing again")
    onset_rank_memory: int = Field(
        16, ge=0, description="the onset score `update` returns is the firing's rank among the "
        "series' last this-many firings (a first firing half the ceiling, one stronger than all "
        "before → the ceiling, repeats of a series that keeps firing → low), so one bar drops a "
        "series' weak repeats; 0: the fired score is the likelihood itself")
    onset_rank_prior: float = Field(2.0, gt=0, description="pseudo-firings below and above "
                                    "that temper the rank of a series' first firings")
    onset_rank_ceiling: float = Field(
        0.5, gt=0, le=1, description="the highest rank score: the extreme detector's records "
        "(0.5–1) stay above every likelihood firing")
    calm_scale: float = Field(0.0, ge=0, description="samples after a firing before the next "
                              "counts fully")
    dropout_time_gaps: bool = Field(False, description="also score gaps in sample times "
                                    "(a device gone silent is the watchdog's job)")

    stuck_factor: float = Field(3.0, gt=0)
    dropout_factor: float = Field(3.0, gt=0)
    rule_fire: float = Field(0.5, gt=0, le=1)

    # the device models: a per-device regression residual and the subspace stage
    regression_weight: float = Field(1.0, ge=0, le=1, description="0: no regression")
    regression_warmup: int = Field(1440, ge=2, description="samples the device models "
                                   "(regression, subspace) learn: a daily cycle at 1/min")
    regression_half_life: float = Field(43200.0, gt=0, description="of the relations (30 days)")
    regression_short_half_life: float = Field(5.0, gt=0)
    regression_long_half_life: float = Field(120.0, gt=0)
    regression_half_z: float = Field(4.5, gt=0, description="of the short residual average")
    regression_long_half_z: float = Field(5.0, gt=0, description="of the long average: a "
                                          "firmware's step must not pass for a drift")
    regression_short_floor: float = Field(0.6, gt=0)
    regression_long_floor: float = Field(0.5, gt=0)
    regression_select: float = Field(
        0.05, ge=0, lt=1, description="forward selection of each field's predictors: a "
        "feature joins while it explains at least this share of the residual variance left "
        "(0: every feature, ridge only)")
    regression_release: float = Field(
        2.0, ge=0, description="the long residual average counts at most this many short-"
        "average spreads beyond the short average (leaning its way): the level releases when "
        "the relation is back (0: the long average holds as long as it remembers)")
    regression_release_lean: float = Field(
        2.0, ge=0, description="the long residual average holds only while the short one leans "
        "its way by more than this many of the short average's spreads (on devices read at "
        "least every `regression_cusum_base_half_life_s` / 20 seconds, where the CUSUM runs)")
    regression_cusum_k: float = Field(
        3.5, ge=0, description="a sustained relation break: each sample adds to a field's "
        "CUSUM what its short residual average leans beyond this many of its spreads (from the "
        "CUSUM's base, and only while the sample's own residual leans the same way)")
    regression_cusum_base_half_life_s: float = Field(
        240.0, gt=0, description="the CUSUM counts from a slow average of the short residual "
        "average that forgets with this half-life in seconds and stands still while the CUSUM "
        "is above `regression_cusum_h`: a residual that wanders over hours (a temperature with "
        "the weather) moves the base, a break that stays does not")
    regression_cusum_h: float = Field(
        5.0, ge=0, description="CUSUM (in short-average spreads) at which a field's regression "
        "level is 0.5; 2.4 times it gives 0.85 (0: no CUSUM)")
    level_fire: float = Field(0.8, gt=0, le=1, description="level that gives a finding")

    # the streaming subspace model over all of a device's fields (core/detect/subspace.py)
    subspace_weight: float = Field(1.0, ge=0, le=1, description="0: no subspace stage")
    subspace_half_life: float = Field(
        20000.0, gt=0, description="forgetting of its mean, covariance and calibration")
    subspace_scales: tuple[float, ...] = Field(
        (0.0, 3.0, 10.0), min_length=1, max_length=8,
        description="EWMA half-lives its statistics are averaged on (0 = the sample)")
    subspace_min_fields: int = Field(
        2, ge=2, description="devices of at least this many fields get the subspace stage's "
        "level (one-field devices get it through their field level); what it scores depends "
        "on `subspace_joint_min_fields`")
    subspace_joint_min_fields: int = Field(
        9, ge=2, description="devices of at least this many fields score the device "
        "statistics (T², Q) and each field's step both ways; narrower ones (2-8 fields: "
        "one rig, one pump) only a field that moves less than it did (stuck, stopped, "
        "disconnected). On a narrow device a field that drifts on its own is its own "
        "principal component (T² is its level), relations move with the weather's operating "
        "point (Q) and a quantised field's steps come and go with the weather: on "
        "`sim evaluate` seed 11 these opened 10-117 false cases where the regression alone "
        "opened 2, the falling step alone 2 (docs/detection.md, small devices)")
    subspace_sd_floor: float = Field(
        1e-3, gt=0, description="lower bound of the spread of every calibrated statistic "
        "(log units)")
    subspace_field_level: bool = Field(
        False, description="also score each field's own level against its warm-up (off: a "
        "field that follows the weather beyond the range one day of warm-up saw is no fault)")
    subspace_var_frac: float = Field(0.9, gt=0, le=1,
                                     description="variance its principal subspace explains")
    target_false_alarms_per_device_month: float = Field(
        0.1, gt=0, description="false alarms a healthy device may raise per month: the "
        "calibrated level reaches 0.85 (the default rules' bar) at this rate")

    @classmethod
    def nab_reference(cls, **overrides: object) -> DetectorConfig:
        """The earlier single-series NAB tuning (onset scores, no device models), to compare.

        Not a default anywhere; ``benchmarks/nab_eval.py --reference`` scores it beside
        ``DetectorConfig()``.

        >>> DetectorConfig.nab_reference().regression_weight
        0.0
        """
        nab: dict[str, object] = {
            "regression_weight": 0.0, "subspace_weight": 0.0, "multivariate_weight": 1.0,
            "field_level_weight": 0.0, "level_quiet": 200,
            "likelihood_after_warmup": False, "likelihood_var_floor": 0.006,
            "likelihood_short_window": 0, "likelihood_warmup": 300, "quiet_s": 0.0,
            "half_life_interval_s": 0.0,
        }
        nab.update(overrides)
        return cls.model_validate(nab)


def make_detector(config: DetectorConfig | None = None) -> Ensemble:
    """The detector the service, ``forewarn score`` and ``forewarn nab`` run, from ``config``."""
    from core.detect.ensemble import Ensemble  # ensemble imports this module's config type

    return Ensemble(config or DetectorConfig())
