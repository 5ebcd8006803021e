"""The peer detector's drift score (a batch drifting together, issue 20): its kernel against
the plain-numpy reference, its state through a checkpoint, and its ``peer_drift`` events
through the core pipeline for the drifting members of one batch only."""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import PeerConfig, RobustZ, make_peer
from core.detect.peer_drift import POOLS, drift_reference, judge_pools
from core.pipeline import CorePipeline
from core.store.null import NullStore
from edge.schema import TelemetryBatch

H = 3600.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_kernel_agrees_with_the_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 150
    ref = rng.integers(0, 3, n).astype(np.int64)             # 0: a series without labels
    pool = np.zeros((n, POOLS), dtype=np.int64)
    pool[:, 0] = rng.integers(0, 3, n)                        # firmware (0: none)
    pool[:, 1] = 10 + rng.integers(0, 6, n)                   # batch
    flagged_any = 0
    for h in range(40):
        zbucket = np.where(rng.random(n) < 0.9, h, h - 1).astype(np.int64)
        zs = rng.standard_t(3, n) * 1.5
        shifted = pool[:, 1] == 10 + h % 6                    # one batch off, each bucket
        zs[shifted] += rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 6.0, int(shifted.sum()))
        kernel = rng.random(n).round(1)                       # held scores from before
        reference = kernel.copy()
        for bar, min_hits, alpha in ((4.0, 3, 0.01), (2.5, 2, 0.001)):
            judge_pools(h, ref, pool, zbucket, zs, kernel, bar, min_hits, alpha, 3)
            drift_reference(h, ref, pool, zbucket, zs, reference, bar, min_hits, alpha, 3)
            np.testing.assert_array_equal(kernel, reference)
        flagged_any += int((kernel[zbucket == h] == 1.0).sum())
    assert flagged_any > 0                                    # the comparison saw alarms


def _batch(device: str, t: np.ndarray, values: np.ndarray) -> TelemetryBatch:
    return TelemetryBatch(device_id=device, boot_id="b", seq=int(t[0] // 3600),
                          product="water_pump", firmware="2.5.3", fields=["vibration"],
                          t=t.tolist(),
                          values=values[:, None].tolist())


def _labels(tenant: str, device_id: str, product: str, firmware: str | None
            ) -> tuple[str, str]:
    """Two regions of twelve pumps; batch B17 is every third pump, across both."""
    index = int(device_id.split("-")[1])
    group = f"{tenant}/{product}/region={index % 2}"
    return group, f"{group}/firmware={firmware}/batch={'B17' if index % 3 == 0 else 'B10'}"


def _config() -> PeerConfig:
    return PeerConfig(lag_s=3600.0, warmup=12, min_members=5, drift_bar=3.0, drift_min=3,
                      drift_alpha=0.01)


def _run(restart_at: int | None) -> list[tuple[str, str, float]]:
    """24 pumps for three days; four of B17 wear from hour 36; a restart from a checkpoint
    at ``restart_at`` (None: none). Their peer events (detector, device, time)."""
    rng = np.random.default_rng(11)
    devices = [f"wp-{i}" for i in range(24)]
    pipe = CorePipeline(RobustZ(), NullStore(), peer=make_peer(_config()), peer_labels=_labels)
    events = []
    for hour in range(24 * 3):
        t = hour * H + 600.0 * np.arange(6)
        for i, device in enumerate(devices):
            v = 3.0 + 0.05 * i + rng.normal(0.0, 0.1, 6)
            if device in DRIFTING and hour >= 36:
                v += 0.004 * (hour - 36) ** 2                 # wear grows with time squared
            scored = pipe.process("acme", _batch(device, t, v))
            assert scored is not None
            events += [(e.detector, e.device_id, e.ts) for e in scored.events
                       if e.detector.startswith("peer")]
        if hour == restart_at:  # the pools' labels and scores are in the checkpoint
            again = CorePipeline(RobustZ(), NullStore(), peer=make_peer(_config()),
                                 peer_labels=_labels)
            again.load_state(pipe.state())
            pipe = again
    return events


#: four of the eight pumps of B17
DRIFTING = {"wp-0", "wp-3", "wp-6", "wp-9"}


def test_a_batch_drifting_together_is_flagged_before_each_member_alone() -> None:
    """The four pumps of B17 that creep up together are flagged by the drift score
    (``peer_drift``) before each is flagged unlike its peers (``peer``), nobody else is; a
    restart from a checkpoint (after the pools were labelled, before the drift) changes
    nothing."""
    events = _run(None)
    assert _run(30) == events
    drift = {d: ts for kind, d, ts in events if kind == "peer_drift"}
    alone = {d: ts for kind, d, ts in events if kind == "peer"}
    assert set(drift) == DRIFTING
    assert all(drift[d] < alone.get(d, np.inf) for d in DRIFTING)
    assert max(drift.values()) < 60 * H
