"""The ensemble as the service runs it: one onset per anomaly, explained, checkpointed."""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import DetectorConfig, Ensemble, make_detector
from core.detect.likelihood import AnomalyLikelihood
from core.detect.onset import Onset, TimedOnset

SLOT = np.array([0], dtype=np.int64)


def _series(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 300.0 * np.arange(n, dtype=np.float64)
    x = 50.0 + 5.0 * np.sin(2 * np.pi * t / 86400.0) + rng.normal(0.0, 1.0, n)
    return x[:, None], t


def test_default_config_builds_the_ensemble() -> None:
    det = make_detector()
    assert isinstance(det, Ensemble)
    assert det.config == DetectorConfig()


def test_unknown_config_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="not_a_knob"):
        DetectorConfig(not_a_knob=1)  # type: ignore[call-arg]


def test_new_series_warms_up_without_alarms() -> None:
    x, t = _series(400)
    x[100:120] += 40.0  # a fault during warm-up: learned, not reported
    scores = make_detector().update(SLOT, x, t)
    assert scores[: DetectorConfig().warmup].max() == 0.0


@pytest.mark.parametrize(("rearm", "n_fired"), [(0, 2), (5, 1)], ids=["default", "rearm"])
def test_a_level_shift_fires_at_its_onset_and_is_explained(rearm: int, n_fired: int) -> None:
    # by default a disturbance that lasts fires again once the quiet period is over; with
    # ``rearm`` the score must first fall back below the firing level
    x, t = _series()
    x[2500:] += 25.0
    det = make_detector(DetectorConfig(rearm=rearm))
    scores = det.update(SLOT, x[:2400], t[:2400])
    assert scores[400:].max() == 0.0
    scores = det.update(SLOT, x[2400:], t[2400:])
    fired = np.nonzero(scores[:, 0])[0]
    assert fired.size == n_fired and 100 <= fired[0] < 120
    assert np.all(np.diff(fired) > DetectorConfig().quiet)
    # the findings are the onsets of the level (what rules hold), near the score's onset
    finding = det.last_findings()[0]
    assert 100 <= finding.row < 130 and finding.column == 0
    assert finding.detector in {"extreme", "level", "seasonal", "transition"}
    assert "value" in finding.explanation and 0.0 < finding.score <= 1.0


@pytest.mark.parametrize("block", [1, 7, 64, 500], ids=lambda b: f"block{b}")
def test_scores_do_not_depend_on_block_size(block: int) -> None:
    """No look-ahead: how the stream is cut into batches changes nothing."""
    x, t = _series(1500, seed=3)
    x[1200:1210] -= 30.0
    whole = make_detector().update(SLOT, x, t)
    det = make_detector()
    parts = [det.update(SLOT, x[i:i + block], t[i:i + block]) for i in range(0, 1500, block)]
    np.testing.assert_array_equal(np.vstack(parts), whole)


def test_checkpoint_restores_every_stage() -> None:
    x, t = _series(2000, seed=5)
    x[1700] += 60.0
    whole = make_detector().update(SLOT, x, t)
    first = make_detector()
    head = first.update(SLOT, x[:1000], t[:1000])
    restarted = Ensemble.from_state(first.state())
    tail = restarted.update(SLOT, x[1000:], t[1000:])
    np.testing.assert_array_equal(np.vstack([head, tail]), whole)
    assert whole.max() > 0.0


def test_multivariate_names_the_field_out_of_step() -> None:
    rng = np.random.default_rng(9)
    load = rng.normal(0.0, 1.0, 3000)
    x = np.c_[load, 2.0 * load, -load] + rng.normal(0.0, 0.05, (3000, 3))
    det = make_detector(DetectorConfig.nab_reference(level_weight=0.0, seasonal_weight=0.0,
                                                     transition_weight=0.0, extreme_weight=0.0))
    det.update([0, 1, 2], x[:2900])
    bad = x[2900:].copy()
    bad[50:, 1] = -2.0 * load[2950:]  # field 1 now moves against the others
    det.update([0, 1, 2], bad)
    found = [f for f in det.last_findings() if f.detector == "multivariate"]
    assert found and all(f.column == 1 for f in found)


def test_findings_quote_a_time_to_limit_when_drifting_towards_it() -> None:
    n = 2000
    t = 60.0 * np.arange(n, dtype=np.float64)
    x = 20.0 + np.where(np.arange(n) > 1500, 0.05 * (np.arange(n) - 1500), 0.0)
    x = (x + np.random.default_rng(2).normal(0.0, 0.2, n))[:, None]
    det = make_detector()
    det.range.set_limits([0], lo=[-np.inf], hi=[60.0])
    det.update(SLOT, x, t)
    ttl = det.statistical["drift"][1]
    seconds = ttl.time_to_limit(SLOT, *det.range.limits(SLOT))  # type: ignore[attr-defined]
    # about (60 - 45) / 0.05 samples of a minute away
    assert 5_000 < float(seconds[0]) < 40_000


def test_state_per_series_is_a_few_kilobytes() -> None:
    assert make_detector().bytes_per_series() < 8192


@pytest.mark.parametrize(("after_warmup", "fires"), [(True, False), (False, True)],
                         ids=["learns-after-warmup", "learned-the-warmup-zeros"])
def test_likelihood_does_not_learn_the_warmup_zeros(after_warmup: bool, fires: bool) -> None:
    # the detectors feeding the likelihood score 0 while they warm up; a stage that learned
    # those zeros takes the first live (and perfectly ordinary) scores for an anomaly
    cfg = DetectorConfig()
    det = AnomalyLikelihood(1, cfg.likelihood_window, cfg.likelihood_half_life, cfg.warmup,
                            var_floor=cfg.likelihood_var_floor,
                            skip=cfg.warmup if after_warmup else 0)
    raw = np.random.default_rng(4).uniform(0.1, 0.4, (1500, 1))
    raw[: cfg.warmup] = 0.0
    scores = det.update(SLOT, raw)
    assert scores[: 2 * cfg.warmup].max() == 0.0 or not after_warmup
    assert bool(scores.max() >= cfg.fire) is fires



@pytest.mark.parametrize(("memory", "spread"), [(16, True), (0, False)],
                         ids=["ranked", "likelihood-only"])
def test_fired_scores_rank_instead_of_sitting_at_the_firing_bar(memory: int,
                                                                spread: bool) -> None:
    # a wandering (AR 0.98) series stirs the likelihood now and then: each firing scores just
    # above `fire` unless the onset ranks it against the series' earlier firings
    rng = np.random.default_rng(5)
    x = np.zeros((8000, 1))
    e = rng.normal(0.0, 1.0, 8000)
    for i in range(1, 8000):
        x[i, 0] = 0.98 * x[i - 1, 0] + e[i]
    cfg = DetectorConfig(onset_rank_memory=memory)
    scores = make_detector(cfg).update(SLOT, x, np.arange(8000, dtype=np.float64) * 60.0)[:, 0]
    fired = scores[scores > 0.0]
    assert fired.size >= 3
    if spread:
        assert fired[0] == 0.5 * cfg.onset_rank_ceiling and fired.max() - fired.min() > 0.05
    else:
        assert fired.max() < cfg.fire + 0.05


def test_a_series_firing_at_one_strength_ranks_each_repeat_lower() -> None:
    onset = Onset(capacity=1, fire=0.1, quiet=0, rank_memory=16, rank_prior=2.0)
    x = np.zeros((40, 1))
    x[::4, 0] = 0.2                                    # ten firings, all of the same strength
    x[38, 0] = 0.3                                     # then a stronger one
    fired = onset.update(SLOT, x)[:, 0]
    repeats = fired[:37:4]
    # each repeat ranks lower, down to the firing's own strength (the floor of a fired score)
    assert repeats[0] == 0.5 and np.all(np.diff(repeats[:7]) < 0.0) and repeats[-1] == 0.2
    assert fired[38] > repeats[-1]


@pytest.mark.parametrize(("step_s", "gap"), [(300.0, 11), (900.0, 4), (60.0, 21), (3600.0, 4)],
                         ids=["5min", "15min", "1min-capped", "hourly-floored"])
def test_a_timed_quiet_period_fences_off_the_same_time_at_any_sampling(step_s: float,
                                                                        gap: int) -> None:
    # quiet_s = 3,000 s: 10 rows of 5 minutes, 3.3 of 15 minutes (3: fires again 4 rows on),
    # 50 of 1 minute capped at quiet = 20 rows, 0.8 of an hour floored at quiet_min = 3 rows
    onset = TimedOnset(capacity=1, fire=0.5, quiet=20, quiet_s=3000.0, quiet_min=3)
    n = 200
    t = step_s * np.arange(n, dtype=np.float64)
    fired = np.flatnonzero(onset.update(SLOT, np.full((n, 1), 0.9), t)[:, 0])
    assert fired[0] == 0 and fired.size > 5
    assert np.all(np.diff(fired) == gap)
    # without times it is the plain onset filter with `quiet` rows
    plain = np.flatnonzero(TimedOnset(capacity=1, fire=0.5, quiet=20, quiet_s=3000.0)
                           .update(SLOT, np.full((n, 1), 0.9))[:, 0])
    assert np.all(np.diff(plain) == 21)


def test_the_default_runs_the_timed_quiet_only_on_the_onset_score() -> None:
    det = make_detector()
    # by name: collecting core/detect/onset.py's doctests first (--import-mode=importlib)
    # imports a second copy of the module, whose TimedOnset is another class object
    assert type(det.onset).__name__ == TimedOnset.__name__
    assert type(det.level_onset).__name__ != TimedOnset.__name__
    assert type(det.rule_onset).__name__ != TimedOnset.__name__
    # the earlier NAB tuning keeps its quiet in rows and one likelihood window
    ref = make_detector(DetectorConfig.nab_reference())
    assert not isinstance(ref.onset, TimedOnset) and "likelihood_short" not in ref._parts()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_short_likelihood_fires_on_a_burst_the_long_window_averages_away(seed: int) -> None:
    # a series with a spike on 5 % of its samples: its raw scores are often high, so 8
    # samples 5 sigmas off move the 30-sample mean too little; the 10-sample one fires on them
    rng = np.random.default_rng(seed)
    n = 3000
    t = 300.0 * np.arange(n, dtype=np.float64)
    x = rng.normal(0.0, 1.0, n)
    spikes = rng.random(n) < 0.05
    x[spikes] += rng.choice([-1.0, 1.0], spikes.sum()) * rng.uniform(4.0, 8.0, spikes.sum())
    x[2500:2508] = 5.0 + rng.uniform(0.0, 0.5, 8)
    fired = {}
    for window in (10, 0):
        s = make_detector(DetectorConfig(likelihood_short_window=window)).update(
            SLOT, x[:, None], t)[:, 0]
        assert s[1000:2450].max() == 0.0  # the spikes alone fire neither
        fired[window] = int((s[2500:2520] > 0.0).sum())
    assert fired == {10: 1, 0: 0}
