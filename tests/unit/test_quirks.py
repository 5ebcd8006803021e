"""Installation quirks (issue 20): a weekly heat source on a share of healthy devices, in its
own ground truth, the same whatever the block size, and no fault's truth disturbed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from firmware_sim.fleet import Fleet, FleetConfig
from firmware_sim.imperfections import Imperfections
from firmware_sim.quirks import QUIRK_FIELDS
from forewarn.sim import EvalOptions, run_evaluation

CONFIG = FleetConfig(devices=60, seed=7, products=("heat_pump", "water_pump", "home_battery"),
                     horizon_s=21 * 86_400.0, quirk_fraction=0.3,
                     imperfections=Imperfections.none())


def test_quirks_go_to_healthy_devices_and_leave_the_rest_of_the_fleet_alone() -> None:
    fleet = Fleet(CONFIG)
    quirky = [d for d in fleet.devices if d.quirk is not None]
    assert 8 <= len(quirky) <= 30
    assert all(d.truth is None for d in quirky), "a quirk is never on a faulty device"
    assert {q.field for q in fleet.quirks} <= {f for f, _, _ in QUIRK_FIELDS.values()}
    assert all(q.episodes == 3 and q.period_s == 7 * 86_400.0 for q in fleet.quirks)
    plain = Fleet(dataclasses.replace(CONFIG, quirk_fraction=0.0))
    assert plain.ground_truth == fleet.ground_truth and plain.quirks == []
    # a healthy device without a quirk reads exactly the same either way
    calm = next(i for i, d in enumerate(fleet.devices) if d.quirk is None and d.truth is None)
    assert np.array_equal(fleet.devices[calm].next_block(86_400.0)[1],
                          plain.devices[calm].next_block(86_400.0)[1], equal_nan=True)


def test_the_sensor_reads_warm_during_each_episode_only() -> None:
    fleet, plain = Fleet(CONFIG), Fleet(dataclasses.replace(CONFIG, quirk_fraction=0.0))
    index = next(i for i, d in enumerate(fleet.devices) if d.quirk is not None)
    device, twin = fleet.devices[index], plain.devices[index]
    assert device.quirk is not None
    col = device.product.fields.index(device.quirk.field)
    t = CONFIG.start + np.arange(0.0, CONFIG.horizon_s, 60.0)
    # in blocks of 5 h 20 min: a block size that cuts the episodes anywhere
    rows = [device.next_block(19_200.0)[1] for _ in range(int(CONFIG.horizon_s // 19_200) + 1)]
    warm = np.concatenate(rows)[: t.shape[0], col]
    rows = [twin.next_block(19_200.0)[1] for _ in range(int(CONFIG.horizon_s // 19_200) + 1)]
    extra = warm - np.concatenate(rows)[: t.shape[0], col]
    for start, end in device.quirk.episodes:
        middle = (t > start + 3600.0) & (t < end)
        assert np.nanmin(extra[middle]) > 0.9 * device.quirk.rise - 0.2
    outside = np.ones(t.shape[0], dtype=bool)
    for start, end in device.quirk.episodes:
        outside &= (t < start) | (t > end + 4 * 3600.0)
    assert np.nanmax(np.abs(extra[outside])) < 0.2


def test_the_run_writes_the_quirks_beside_the_ground_truth(tmp_path: Path) -> None:
    fleet = Fleet(CONFIG)
    fleet.write_truth(tmp_path / "ground_truth.jsonl")
    lines = (tmp_path / "quirks.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["device_id"] for line in lines] == [
        q.device_id for q in fleet.quirks]


def test_simulated_agents_quiet_a_quirks_weekly_false_case() -> None:
    """End to end (simulator → core → rules → simulated agents resolving through
    ``rules.case_actions.resolve``): a heat pump whose discharge sensor a sauna warms every
    week opens its refrigerant case three weeks running; with agents marking the first two as
    false alarms, the third week is quiet."""
    options = EvalOptions(devices=1, days=22.0, seed=11, products=("heat_pump",),
                          fault_fraction=0.0, quirk_fraction=1.0)
    alone = run_evaluation(options)
    helped = run_evaluation(dataclasses.replace(options, agents=True))
    assert [q.device_id for q in alone.fleet.quirks] == ["hp-0000"]
    weeks = [int((c.noticed_at - alone.fleet.config.start) // (7 * 86_400.0))
             for c in alone.result.false_cases]
    assert weeks == [0, 1, 2]
    assert {c.rule for c in alone.result.false_cases} == {"heat_pump_refrigerant_circuit"}
    assert len(helped.result.false_cases) == 2
    assert (alone.report["quirk_false_cases"], helped.report["quirk_false_cases"]) == (3, 2)
