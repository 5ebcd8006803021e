"""Configuration of the detector ensemble, shared by the core service and ``forewarn nab``.

The defaults are the tuned configuration: one setting for every series (it was chosen on the
NAB subset as a whole, never per file). :func:`make_detector` is the one place that turns a
config into a detector, so the service and the benchmark run the very same thing.

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
    warmup: int = Field(300, ge=0, description="samples a new series learns before it may fire")
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

    rate_weight: float = Field(0.0, ge=0, le=1)
    drift_weight: float = Field(0.0, ge=0, le=1)
    multivariate_weight: float = Field(1.0, ge=0, le=1)

    extreme_weight: float = Field(1.0, ge=0, le=1)
    extreme_half_life: float = Field(2000.0, gt=0)
    extreme_margin: float = Field(1.2, ge=1)
    extreme_z_min: float = Field(5.0, gt=0)
    extreme_smoothing: tuple[float, ...] = Field(
        (0.0, 5.0), description="EWMA half-lives the records are kept on (0 = raw samples)")

    likelihood_window: int = Field(30, ge=1)
    likelihood_half_life: float = Field(4000.0, gt=0)
    likelihood_mean_floor: float = Field(0.0, ge=0, description="lower bound of the mean")
    likelihood_var_floor: float = Field(
        0.006, gt=0, description="lower bound of the variance of the windowed mean raw score "
        "(HTM bounds it too): a calm series must stir visibly before it fires")
    boost: float = Field(0.0, ge=0, description="alarm bar each firing adds (0 = off)")
    bar_half_life: float = Field(2000.0, gt=0)
    fire: float = Field(0.12, gt=0, le=1, description="likelihood score that fires an event")
    quiet: int = Field(200, ge=0, description="samples a series stays quiet after firing")
    rearm: int = Field(0, ge=0, description="samples below `fire` needed before firing again")
    calm_scale: float = Field(0.0, ge=0, description="samples after a firing before the next "
                              "counts fully")
    dropout_time_gaps: bool = Field(False, description="also score gaps in sample times "
                                    "(a device gone silent is the watchdog's job)")

    stuck_factor: float = Field(3.0, gt=0)
    dropout_factor: float = Field(3.0, gt=0)
    rule_fire: float = Field(0.5, gt=0, le=1)

    # fleet telemetry (see for_fleet): a per-device regression residual gives the level
    regression_weight: float = Field(0.0, ge=0, le=1, description="0: no regression")
    regression_warmup: int = Field(1440, ge=2, description="a full daily cycle of samples")
    regression_half_life: float = Field(43200.0, gt=0, description="of the relations (30 days)")
    regression_short_half_life: float = Field(5.0, gt=0)
    regression_long_half_life: float = Field(120.0, gt=0)
    regression_half_z: float = Field(4.5, gt=0, description="of the short residual average")
    regression_long_half_z: float = Field(5.0, gt=0, description="of the long average: a "
                                          "firmware's step must not pass for a drift")
    regression_short_floor: float = Field(0.6, gt=0)
    regression_long_floor: float = Field(0.5, gt=0)
    level_fire: float = Field(0.8, gt=0, le=1, description="level that gives a finding")

    # the streaming subspace model over all of a device's fields (core/detect/subspace.py)
    subspace_weight: float = Field(0.0, ge=0, le=1, description="0: no subspace stage")
    subspace_half_life: float = Field(
        20000.0, gt=0, description="forgetting of its mean, covariance and calibration")
    subspace_scales: tuple[float, ...] = Field(
        (0.0, 3.0, 10.0), min_length=1, max_length=8,
        description="EWMA half-lives its statistics are averaged on (0 = the sample)")
    subspace_field_level: bool = Field(
        False, description="also score each field's own level against its warm-up (off: a "
        "field that follows the weather beyond the range one day of warm-up saw is no fault)")
    subspace_var_frac: float = Field(0.9, gt=0, le=1,
                                     description="variance its principal subspace explains")
    target_false_alarms_per_device_month: float = Field(
        0.3, gt=0, description="false alarms a healthy device may raise per month: the "
        "calibrated level reaches 0.85 (the default rules' bar) at this rate")

    @classmethod
    def for_fleet(cls, **overrides: object) -> DetectorConfig:
        """The profile for device fleets at one sample a minute: a continuous level per field.

        The NAB defaults tune one series' onset score; a fleet needs a level that stays high
        while a fault lasts (rules hold it for minutes) and knows each device's fields relate.

        >>> DetectorConfig.for_fleet().regression_weight, DetectorConfig.for_fleet(quiet=5).quiet
        (1.0, 5)
        """
        fleet: dict[str, object] = {
            "warmup": 1440, "regression_weight": 1.0, "subspace_weight": 1.0, "level_weight": 0.0,
            "seasonal_weight": 0.0, "transition_weight": 0.0, "multivariate_weight": 0.0,
            "extreme_weight": 0.0, "quiet": 1440,
        }
        fleet.update(overrides)
        return cls.model_validate(fleet)


def make_detector(config: DetectorConfig | None = None) -> Ensemble:
    """The detector the service (and ``forewarn nab``) runs, built from ``config``."""
    from core.detect.ensemble import Ensemble  # ensemble imports this module's config type

    return Ensemble(config or DetectorConfig())
