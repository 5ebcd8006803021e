"""The peer detector: its kernel against the plain-numpy reference, what it catches (a device
drifting off identical peers while the weather moves them all; a cohort moving together), what
it leaves alone (a firmware update), and its events through the core pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import Peer, PeerConfig, RobustZ, make_peer
from core.detect.peer import peer_reference
from core.pipeline import CorePipeline
from core.store.null import NullStore
from edge.schema import TelemetryBatch

H = 3600.0
PARAMS = {"warmup": 6, "min_members": 4, "min_cohort": 3, "half_z": 3.0, "clip": 3.0,
          "spread_floor": 1e-3}


def _fleet(seed: int, buckets: int = 120, devices: int = 12) -> np.ndarray:
    """Hourly means of identical devices under one weather, each with its own offset."""
    rng = np.random.default_rng(seed)
    weather = 6.0 * np.sin(np.arange(buckets) / 24.0 * 2 * np.pi)[:, None]
    return 40.0 + weather + rng.normal(0.0, 1.0, devices) + rng.normal(0.0, 0.4,
                                                                      (buckets, devices))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kernel_agrees_with_the_numpy_reference(seed: int) -> None:
    means = _fleet(seed)
    rng = np.random.default_rng(100 + seed)
    means[rng.random(means.shape) < 0.05] = np.nan           # a few members miss a bucket
    means[70:, 3] += np.linspace(0.0, 8.0, 50)               # one device drifts away
    means[80:, 8:] -= 3.0                                    # a cohort of four moves together
    groups = np.full(12, 7, dtype=np.int64)
    cohorts = np.where(np.arange(12) >= 8, 2, 1).astype(np.int64)
    det = Peer(capacity=12, bucket_s=H, lag_s=0.0, half_life=100.0, persist=2.0, **PARAMS)
    slots = np.arange(12)
    det.assign(slots, ["g"] * 12, ["old" if c == 1 else "new" for c in cohorts])
    # one sample per bucket: bucket h is judged when bucket h + 1 arrives
    device = np.zeros_like(means)
    cohort = np.zeros_like(means)
    for h in range(means.shape[0]):
        device[h] = det.update(slots, means[h][None, :], np.array([h * H]))[0]
        cohort[h] = det.last_cohort_scores()[0]
    ref_device, ref_cohort = peer_reference(
        groups, cohorts, means, alpha=1.0 - 0.5 ** (1 / 100.0), persist=1.0 - 0.5 ** 0.5,
        **PARAMS)
    np.testing.assert_allclose(device[1:], ref_device[:-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cohort[1:], ref_cohort[:-1], rtol=1e-9, atol=1e-12)
    assert ref_device[-1, 3] > 0.8 and np.delete(ref_device[-1], 3).max() < 0.5
    assert ref_cohort[-10:, 8:].max(axis=0).min() > 0.8     # each of the four, lately
    assert ref_cohort[-10:, :8].max() < 0.5


def test_a_slow_drift_its_own_history_absorbs_stands_out_among_peers() -> None:
    """A slow creep under a moving weather: the device's own robust z learns it away, the
    peers do not."""
    rng = np.random.default_rng(5)
    t = 600.0 * np.arange(6 * 24 * 8)                                 # eight days, 10 minutes
    weather = 4.0 * np.sin(t / 86_400.0 * 2 * np.pi)[:, None]
    x = 40.0 + weather + rng.normal(0.0, 0.3, (t.size, 10)) + np.arange(10.0) * 0.2
    x[:, 4] += np.clip((t - 3 * 86_400.0) / 86_400.0, 0.0, None) * 1.5   # 1.5 per day
    slots = np.arange(10)
    peer = make_peer(PeerConfig(lag_s=0.0, min_members=5))
    assert peer is not None
    peer.assign(slots, ["acme/heat_pump/t"] * 10, ["acme/heat_pump/2.5/t"] * 10)
    s = peer.update(slots, x, t)
    own = RobustZ(capacity=10, warmup=300).update(slots, x)
    assert s[-1, 4] > 0.8 and np.delete(s[-1], 4).max() < 0.5
    assert own[-200:, 4].max() < 0.8          # what the device's own history says: nothing


@pytest.mark.parametrize(("step", "cohort_flags"), [(0.0, False), (3.0, True)],
                         ids=["same-curve", "rollout-moved-them"])
def test_a_firmware_update_is_no_device_fault_but_its_cohort_step_shows(
        step: float, cohort_flags: bool) -> None:
    """Four of twelve devices move to 2.6: their device scores stay quiet (each relearns its
    offset); the cohort score says whether 2.6 moved them all."""
    rng = np.random.default_rng(6)
    t = 600.0 * np.arange(6 * 24 * 6)
    x = 40.0 + rng.normal(0.0, 0.3, (t.size, 12)) + np.arange(12.0) * 0.3
    slots = np.arange(12)
    peer = Peer(capacity=12, lag_s=0.0, warmup=12, min_members=5)
    peer.assign(slots, ["g"] * 12, ["2.5"] * 12)
    half = t.size // 2
    peer.update(slots, x[:half], t[:half])
    x[half:, 8:] += step                              # the new firmware's control curve
    peer.assign(slots, ["g"] * 12, ["2.5"] * 8 + ["2.6"] * 4)
    s = peer.update(slots, x[half:], t[half:])
    cohort = peer.last_cohort_scores()
    assert s.max() < 0.5
    assert cohort[:, :8].max() < 0.5
    assert bool(cohort[:, 8:].max(axis=0).min() > 0.8) == cohort_flags


def _batch(device: str, t: np.ndarray, values: np.ndarray, firmware: str = "2.5") -> TelemetryBatch:
    return TelemetryBatch(device_id=device, boot_id="b", seq=int(t[0] // 3600), product="hp",
                          firmware=firmware, fields=["t_flow"], t=t.tolist(),
                          values=values[:, None].tolist())


def test_the_pipeline_emits_peer_events_and_keeps_peer_state() -> None:
    rng = np.random.default_rng(7)
    peer = make_peer(PeerConfig(lag_s=3600.0, warmup=12, min_members=5))
    pipe = CorePipeline(RobustZ(), NullStore(), peer=peer)
    devices = [f"hp-{i}" for i in range(8)]
    events = []
    restored = False
    for hour in range(24 * 4):
        t = hour * H + 600.0 * np.arange(6)
        for i, device in enumerate(devices):
            v = 40.0 + i * 0.2 + rng.normal(0.0, 0.3, 6)
            if device == "hp-5" and hour >= 60:
                v += 0.15 * (hour - 60)
            scored = pipe.process("acme", _batch(device, t, v))
            assert scored is not None
            events += [e for e in scored.events if e.detector.startswith("peer")]
        if hour == 40 and not restored:  # a restart from a snapshot changes nothing
            again = CorePipeline(RobustZ(), NullStore(), peer=make_peer(PeerConfig(
                lag_s=3600.0, warmup=12, min_members=5)))
            again.load_state(pipe.state())
            pipe, restored = again, True
    assert {e.device_id for e in events} == {"hp-5"}
    first = min(e.ts for e in events if e.detector == "peer")
    assert 60 * H < first < 80 * H
    assert pipe.stats.peer_events == len([e for e in events if e.ts >= 40 * H])
