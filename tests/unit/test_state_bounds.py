"""Per-device state is bounded (issue 18.10): a device that changes its boot_id or its field
names on every message cannot grow core's dedup memory, series map or detector arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.dedup import DuplicateFilter
from core.detect import DetectorConfig, RobustZ, make_detector
from core.detect.ensemble import Ensemble
from core.detect.series import SeriesRegistry
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from forewarn.metrics import ForewarnMetrics

TOPIC = "forewarn/v1/acme/hp-1/telemetry"


def _payload(boot: str, seq: int, fields: list[str], t: float) -> bytes:
    return json.dumps({"device_id": "hp-1", "boot_id": boot, "seq": seq, "fields": fields,
                       "t": [t], "values": [[1.0] * len(fields)]}).encode()


@pytest.mark.parametrize("detector", ["robust_z", "ensemble"])
def test_a_device_inventing_boots_and_fields_stays_bounded(detector: str) -> None:
    det = RobustZ() if detector == "robust_z" else make_detector(DetectorConfig())
    pipe = CorePipeline(det, EmbeddedStore(":memory:"), max_series_per_device=64,
                        max_boots_per_device=4)
    n = 3000
    for i in range(n):
        fields = [f"f{i}", "steady"]  # one new field name and one that stays
        assert pipe.process_payload(TOPIC, _payload(f"boot{i}", 0, fields, 1000.0 + i))
    assert pipe.stats.batches_ingested == n and not pipe.dead_letters.counts
    assert len(pipe.series) == 64
    assert pipe.stats.evicted_series == n + 1 - 64  # every new name past the cap
    assert sum(1 for _ in pipe.dedup.state()) == 4
    assert pipe.stats.evicted_boots == n - 4
    capacity = det.capacity if isinstance(det, RobustZ) else det.range.capacity
    assert capacity <= 1024  # the detector's arrays never grew past their first allocation
    # the series that stayed kept its slot and its learning
    assert pipe.series.slots("acme", "hp-1", ("steady",)).tolist() == [1]
    metrics = ForewarnMetrics()
    metrics.attach_pipeline(pipe)
    text = metrics.exposition().decode()
    assert f'forewarn_state_evicted_total{{kind="series"}} {n + 1 - 64}.0' in text
    assert f'forewarn_state_evicted_total{{kind="boot"}} {n - 4}.0' in text


def test_a_reused_slot_starts_as_a_new_series() -> None:
    det = make_detector(DetectorConfig())
    assert isinstance(det, Ensemble)
    fresh = make_detector(DetectorConfig()).state()
    slots = np.arange(3, dtype=np.int64)
    rng = np.random.default_rng(1)
    det.update(slots, rng.normal(size=(50, 3)), 1000.0 + np.arange(50.0))
    learned = det.state()
    det.forget(np.array([1], dtype=np.int64))
    state = det.state()
    changed = [name for name in state if not np.array_equal(learned[name][1], fresh[name][1],
                                                            equal_nan=True)]
    assert changed, "learning should have changed slot 1"
    for name in state:
        assert np.array_equal(state[name][1], fresh[name][1], equal_nan=True), name
        assert np.array_equal(state[name][0], learned[name][0], equal_nan=True), name


def test_series_registry_keeps_slots_across_a_checkpoint_and_reuses_freed_ones() -> None:
    reg = SeriesRegistry(max_per_device=2)
    reg.slots("acme", "hp-1", ("a", "b"))
    reg.slots("acme", "hp-1", ("c",))  # evicts a (slot 0)
    again = SeriesRegistry(max_per_device=2)
    again.load(reg.items())
    assert again.slots("acme", "hp-1", ("b", "c")).tolist() == [1, 0]
    assert again.slots("acme", "hp-2", ("a",)).tolist() == [2]
    assert again.slots("acme", "hp-1", ("d",)).tolist() == [1]  # b was least recently used
    assert again.reused.tolist() == [1]


def test_dedup_forgets_the_least_recently_used_boot() -> None:
    dedup = DuplicateFilter(max_boots=2)
    assert dedup.is_new("t", "d", "b1", 0) and dedup.is_new("t", "d", "b2", 0)
    assert not dedup.is_new("t", "d", "b1", 0)  # b1 is now the most recent
    assert dedup.is_new("t", "d", "b3", 0)  # evicts b2
    assert not dedup.is_new("t", "d", "b1", 0) and dedup.is_new("t", "d", "b2", 0)
    assert dedup.evicted == 2
    restored = DuplicateFilter(max_boots=1)
    restored.load(dedup.state())
    assert list(restored.state()) == [("t", "d", "b2")]
