"""The simulated fleet: deterministic, devices independent of fleet size and of block length,
imperfections that show, ground truth that round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_sim.calls import CallModel
from firmware_sim.fleet import Fleet, FleetConfig
from firmware_sim.imperfections import FIRMWARE_AFTER_UPDATE, Imperfections
from firmware_sim.products import PRODUCTS
from firmware_sim.truth import read_jsonl

MIXED = tuple(PRODUCTS)
DAY = 86_400.0


def _run(fleet: Fleet, block_s: float, total_s: float) -> list[np.ndarray]:
    out = []
    for device in fleet.devices:
        parts = [device.next_block(block_s)[1] for _ in range(round(total_s / block_s))]
        out.append(np.vstack(parts))
    return out


def test_same_seed_same_fleet() -> None:
    config = FleetConfig(devices=6, seed=11, products=MIXED, horizon_s=DAY)
    a, b = Fleet(config), Fleet(config)
    assert a.ground_truth == b.ground_truth
    for x, y in zip(_run(a, 3600.0, DAY), _run(b, 3600.0, DAY), strict=True):
        np.testing.assert_array_equal(x, y)


def test_other_seed_other_fleet() -> None:
    a = _run(Fleet(FleetConfig(devices=2, seed=1, horizon_s=DAY)), DAY, DAY)
    b = _run(Fleet(FleetConfig(devices=2, seed=2, horizon_s=DAY)), DAY, DAY)
    assert not np.array_equal(a[0], b[0], equal_nan=True)


def test_device_independent_of_fleet_size() -> None:
    small = Fleet(FleetConfig(devices=18, seed=5, products=MIXED, horizon_s=DAY))
    large = Fleet(FleetConfig(devices=40, seed=5, products=MIXED, horizon_s=DAY))
    d_small, d_large = small.devices[17], large.devices[17]
    assert (d_small.device_id, d_small.truth) == (d_large.device_id, d_large.truth)
    np.testing.assert_array_equal(d_small.next_block(DAY)[1], d_large.next_block(DAY)[1])


@pytest.mark.parametrize("product", MIXED)
def test_block_length_does_not_change_the_series(product: str) -> None:
    config = FleetConfig(devices=3, seed=3, product=product, horizon_s=DAY, fault_fraction=1.0,
                         onset_window=(0.2, 0.4), fault_ramp_s=6 * 3600.0)
    whole = _run(Fleet(config), DAY, DAY)
    pieces = _run(Fleet(config), 1800.0, DAY)
    for x, y in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(x, y, atol=0.011, equal_nan=True)


@pytest.mark.parametrize("product", MIXED)
def test_daily_rhythm_and_weekly_rhythm(product: str) -> None:
    fleet = Fleet(FleetConfig(devices=1, seed=2, product=product, horizon_s=14 * DAY,
                              fault_fraction=0.0, imperfections=Imperfections.none()))
    values = fleet.devices[0].next_block(14 * DAY)[1]
    hourly = values.reshape(14, 24, 60, -1).mean(axis=2)  # day, hour, field
    # some field swings through the day by much more than its noise
    swing = (hourly.max(axis=1) - hourly.min(axis=1)).mean(axis=0)
    noise = np.nanstd(np.diff(values, axis=0), axis=0)
    assert (swing > 5 * noise).any()


def test_ground_truth_round_trips(tmp_path: Path) -> None:
    fleet = Fleet(FleetConfig(devices=30, seed=4, products=MIXED, fault_fraction=0.5))
    fleet.write_truth(tmp_path / "truth.jsonl")
    assert read_jsonl(tmp_path / "truth.jsonl") == fleet.ground_truth
    assert {t.product for t in fleet.ground_truth} == set(MIXED)


def test_never_visible_faults_never_call() -> None:
    fleet = Fleet(FleetConfig(devices=200, seed=4, products=MIXED, fault_fraction=1.0,
                              call_model=CallModel(never_call_fraction=0.0)))
    invisible = {t.kind for t in fleet.ground_truth if t.visible is None}
    assert invisible == {"sensor_stuck", "sensor_spikes", "capacity_fade"}
    for truth in fleet.ground_truth:
        assert (truth.call is None) == (truth.visible is None)
        if truth.visible is not None and truth.call is not None:
            assert truth.onset <= truth.visible < truth.call


def test_imperfections_show_in_the_blocks() -> None:
    rates = Imperfections(outages_per_day=1.0, firmware_update_share=1.0, late_batch_rate=0.2,
                          clock_offset_sd_s=30.0)
    fleet = Fleet(FleetConfig(devices=20, seed=9, products=MIXED, horizon_s=5 * DAY,
                              fault_fraction=0.0, imperfections=rates))
    lost = off = skewed = out_of_order = reboots = 0
    firmware = set()
    for device in fleet.devices:
        block = device.next_sim_block(5 * DAY)
        lost += int(np.isnan(block.values).any(axis=1).sum())
        off += int((~block.present).sum())
        skewed += int(np.abs(block.t - block.true_t).max() > 1.0)
        batches = device.batches(block, 600.0)
        arrivals = [b.arrival for b in batches]
        out_of_order += int(arrivals != sorted(arrivals))
        reboots += len({b.boot_id for b in batches}) - 1
        firmware |= {b.firmware for b in batches}
    assert lost > off > 0
    assert skewed > 10 and out_of_order > 0 and reboots > 0
    assert FIRMWARE_AFTER_UPDATE in firmware


def test_deliveries_arrive_in_order_and_cover_every_sample() -> None:
    config = FleetConfig(devices=5, seed=3, products=MIXED, horizon_s=2 * DAY,
                         imperfections=Imperfections(late_batch_rate=0.2, outages_per_day=0.0))
    arrivals, samples = [], 0
    for delivery in Fleet(config).deliveries(block_s=DAY / 2, batch_s=3600.0):
        arrivals.append(delivery.arrival)
        samples += delivery.t.shape[0]
        batch = delivery.to_batch()
        assert batch.n_samples == delivery.t.shape[0]
    assert arrivals == sorted(arrivals)
    assert samples == 5 * 2 * 1440


def test_valid_and_unvalidated_batches_agree() -> None:
    fleet = Fleet(FleetConfig(devices=1, seed=3, horizon_s=DAY,
                              imperfections=Imperfections(missing_rate=0.2)))
    delivery = next(iter(fleet.deliveries(batch_s=3600.0)))
    fast, valid = delivery.to_batch(validate=False), delivery.to_batch()
    assert fast.model_dump(exclude={"values"}) == valid.model_dump(exclude={"values"})
    as_array = lambda b: np.asarray(b.values, dtype=np.float64)  # noqa: E731 (as core reads it)
    assert np.isnan(as_array(valid)).any()
    np.testing.assert_array_equal(as_array(fast), as_array(valid))


def test_sample_arrival_follows_the_agents_small_batches() -> None:
    config = FleetConfig(devices=1, seed=3, horizon_s=DAY, imperfections=Imperfections.none())
    delivery = next(iter(Fleet(config).deliveries(batch_s=3600.0, agent_batch_s=600.0)))
    assert delivery.sample_arrival is not None
    # six agent batches of ten samples; each arrives just after its last sample
    assert np.unique(delivery.sample_arrival).size == 6
    assert (delivery.sample_arrival >= delivery.t).all()
    assert delivery.sample_arrival.max() == delivery.arrival
