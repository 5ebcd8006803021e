"""Configuration of the peer detector (``[peer]`` in the settings): one place turns it into a
:class:`~core.detect.peer.Peer`.

>>> make_peer(PeerConfig()).bucket_s
3600.0
>>> make_peer(PeerConfig(enabled=False)) is None
True
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.detect.peer import Peer

__all__ = ["PeerConfig", "make_peer"]


class PeerConfig(BaseModel):
    """Every knob of the peer comparison; counts of buckets unless they say seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="compare each device with its peers (events "
                          "`peer`, `peer_cohort` and `peer_drift`, which rules may use)")
    bucket_s: float = Field(3600.0, gt=0, description="samples are averaged over buckets this "
                            "long and compared across peers bucket by bucket")
    lag_s: float = Field(7200.0, ge=0, description="a bucket is judged once samples this much "
                         "later arrived (late members still count)")
    half_life: float = Field(336.0, gt=0, description="of each device's usual offset from its "
                             "peers (two weeks of hourly buckets)")
    warmup: int = Field(24, ge=1, description="buckets a device (or a device after a firmware "
                        "update) learns its offset before it may score")
    min_members: int = Field(5, ge=2, description="peers reporting a bucket for it to be judged")
    min_cohort: int = Field(3, ge=1, description="warm members a cohort needs for its score")
    half_z: float = Field(4.0, gt=0, description="smoothed excess (in spreads of the peer "
                          "group) that scores 0.5; the event threshold 0.8 is twice this. "
                          "Chosen on the simulator's tuning seeds 11-20: 3.0 flagged healthy "
                          "devices 12 times in 4396 device-days, 4.0 none, both 121 of the 123 "
                          "devices of the cohort-wide faults")
    persist: float = Field(3.0, gt=0, description="half-life of the excess' smoothing")
    clip: float = Field(3.0, gt=0, description="excess beyond which a device's offset learns "
                        "no more (spreads)")
    spread_floor: float = Field(1e-3, ge=0, description="lowest spread, relative to the "
                                "group's level")
    cohort_hold: int = Field(168, ge=0, description="buckets a device that changed cohort (a "
                             "firmware update) is still measured, for its cohort's score, from "
                             "its offset before the change")
    drift_bar: float = Field(4.0, gt=0, description="a device of a pool (its batch, its "
                             "release) counts as drifting at this smoothed excess (spreads; "
                             "the device score flags at twice half_z). Chosen on the "
                             "simulator's tuning seeds 11-14 (docs/incidents.md)")
    drift_min: int = Field(3, ge=1, description="drifting devices of one pool, the same way, "
                           "at the same time, for them to be flagged (event `peer_drift`)")
    drift_alpha: float = Field(0.01, gt=0, le=1, description="…and so many of the pool "
                               "this improbable at the rest of the product's rate (the "
                               "chance a healthy pool is flagged in a bucket)")


def make_peer(config: PeerConfig | None = None) -> Peer | None:
    """The peer detector ``config`` describes (None when disabled)."""
    cfg = config or PeerConfig()
    if not cfg.enabled:
        return None
    return Peer(bucket_s=cfg.bucket_s, lag_s=cfg.lag_s, half_life=cfg.half_life,
                warmup=cfg.warmup, min_members=cfg.min_members, min_cohort=cfg.min_cohort,
                half_z=cfg.half_z, persist=cfg.persist, clip=cfg.clip,
                spread_floor=cfg.spread_floor, cohort_hold=cfg.cohort_hold,
                drift_bar=cfg.drift_bar, drift_min=cfg.drift_min, drift_alpha=cfg.drift_alpha)
