"""The walking skeleton end to end over a real mosquitto: fleet → edge → MQTT → core → rules."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from core.config import MqttConfig
from edge.schema import telemetry_subscription
from forewarn.demo import DemoOptions, run_demo
from forewarn.settings import BrokerSettings, CasesSettings, Settings
from tests.servers.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_every_sample_once_and_one_case_per_fault_before_the_call(
    mosquitto: Mosquitto, unique_tenant: str, tmp_path: Path
) -> None:
    settings = Settings(
        tenant=unique_tenant,
        broker=BrokerSettings(embedded=False),
        mqtt=MqttConfig(port=mosquitto.port, protocol="5",
                        subscription=telemetry_subscription(unique_tenant)),
        cases=CasesSettings(rules_file=ROOT / "config/rules/heat_pump.yaml"),
    )
    options = DemoOptions(devices=8, hours=96, seed=4, out_dir=tmp_path / "run",
                          show_notices=False, progress=False, fault_fraction=0.4)
    summary = asyncio.run(run_demo(settings, options))

    assert summary.samples_published == summary.devices * 96 * 60
    assert summary.samples_ingested == summary.samples_published
    assert summary.samples_lost == 0
    assert summary.dead_letters == 0

    truth = [json.loads(line)
             for line in (options.out_dir / "ground_truth.jsonl").read_text().splitlines()]
    faulty = {t["device_id"]: t for t in truth}
    assert faulty, "the seed must inject at least one fault"
    cases_by_device: dict[str, list[float]] = {}
    for case in summary.cases:
        cases_by_device.setdefault(case.device_id, []).append(case.opened_at)
    for device_id, fault in faulty.items():
        opened = cases_by_device.get(device_id, [])
        assert len(opened) == 1, f"{device_id} ({fault['kind']}) got {len(opened)} cases"
        assert opened[0] >= fault["onset"]
        if fault["call"] is not None:
            assert opened[0] < fault["call"], f"{device_id}: case after the customer's call"
    healthy_cases = set(cases_by_device) - set(faulty)
    assert not healthy_cases, f"healthy devices got cases: {summary.cases}"

    notices = [json.loads(line)
               for line in (options.out_dir / "notices.jsonl").read_text().splitlines()]
    customer = [n for n in notices if n["audience"] == "customer"]
    assert sorted(n["device_id"] for n in customer) == sorted(faulty)
    assert summary.notifications_sent == len(notices)
    team = [(n["device_id"], n["kind"]) for n in notices if n["audience"] == "team"]
    # the demo runs the service's ticks in simulated time: nobody acknowledges the demo's
    # cases, so each escalates once its escalate_after has passed (simulated, not wall time)
    assert sorted(team) == sorted([(d, "opened") for d in faulty]
                                  + [(d, "escalated") for d in faulty])

    # one clock: everything the case book dated happened within the simulated run
    end = 1767225600.0 + 96 * 3600.0  # the fleet's start (2026-01-01) + the hours
    with sqlite3.connect(options.out_dir / "cases.sqlite") as db:
        stamps = [row[0] for table, column in (("notices", "created_at"),
                                               ("case_events", "ts"), ("cases", "opened_at"))
                  for row in db.execute(f"SELECT {column} FROM {table}")]
    assert stamps and max(stamps) <= end
