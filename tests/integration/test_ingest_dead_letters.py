"""The direct engine over a real mosquitto: a poison message is dead-lettered into the case
database and the messages after it are still ingested (issue 16.6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import create_engine

from core.config import MqttConfig
from core.dead_letter import DeadLetterStore
from core.store.config import StoreConfig
from core.store.embedded import EmbeddedStore
from edge.schema import telemetry_subscription, telemetry_topic
from forewarn.settings import BrokerSettings, CasesSettings, CoreSettings, Settings
from forewarn.workers import WorkerOptions, run_direct
from tests.servers.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _batch(seq: int, t: float) -> bytes:
    return json.dumps({"v": 1, "device_id": "hp-1", "boot_id": "b", "seq": seq,
                       "fields": ["a"], "t": [t], "values": [[1.0]]}).encode()


def test_run_direct_dead_letters_poison_and_keeps_ingesting(
        mosquitto: Mosquitto, unique_tenant: str, tmp_path: Path) -> None:
    cases_url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    settings = Settings(
        tenant=unique_tenant,
        broker=BrokerSettings(embedded=False),
        mqtt=MqttConfig(port=mosquitto.port, client_id=f"core-{unique_tenant}",
                        subscription=telemetry_subscription(unique_tenant)),
        core=CoreSettings(tick_interval_s=3600.0, limits_file=None, state_dir=tmp_path / "state"),
        store=StoreConfig(path=tmp_path / "telemetry.sqlite"),
        cases=CasesSettings(url=cases_url, rules_file=ROOT / "config/rules/heat_pump.yaml",
                            notices_jsonl=tmp_path / "notices.jsonl"),
    )
    topic = telemetry_topic(unique_tenant, "hp-1")
    now = time.time()
    poison = [
        b'{"t":' + b"[" * 1000 + b"]" * 1000 + b"}",  # RecursionError ended ingest before
        _batch(1, now + 3 * 86_400),                   # beyond the 1-day future horizon
        _batch(2, 1e300),                              # past any date (overflowed before)
        b"\xff\xfe\x00",
    ]

    async def scenario() -> int:
        service = asyncio.create_task(run_direct(settings, WorkerOptions()))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port,
                                  identifier=f"dev-{unique_tenant}") as client:
            # the service subscribes when it is up: publish until its first batch is stored
            deadline = time.monotonic() + 60
            stored = 0
            seq = 10
            while stored == 0 and time.monotonic() < deadline and not service.done():
                await client.publish(topic, _batch(seq, now), qos=1)
                seq += 1
                await asyncio.sleep(0.5)
                stored = _samples(settings)
            assert stored, "the service never ingested a valid batch"
            for payload in poison:
                await client.publish(topic, payload, qos=1)
            await client.publish(topic, _batch(1000, now + 1), qos=1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                    _samples(settings) >= stored + 1 and sum(_counts(cases_url).values()) >= 4):
                await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)
        return await service

    assert asyncio.run(scenario()) == 0
    assert _counts(cases_url) == {"bad_encoding": 1, "future_timestamp": 1, "invalid": 1,
                                  "too_deep": 1}
    assert _samples(settings) >= 2


def _samples(settings: Settings) -> int:
    with EmbeddedStore(settings.store.path) as store:
        return store.count_samples(settings.tenant)


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        return DeadLetterStore(engine).counts()
    finally:
        engine.dispose()


def test_forewarn_core_exits_non_zero_when_its_ingest_task_dies(
        mosquitto: Mosquitto, unique_tenant: str, tmp_path: Path) -> None:
    """A subscription the broker's client refuses ends the ingest loop: the process must say so
    and exit 1 (systemd restarts it) instead of staying up and ingesting nothing."""
    config = tmp_path / "forewarn.toml"
    config.write_text(f"""
[broker]
embedded = false
[mqtt]
port = {mosquitto.port}
client_id = "core-{unique_tenant}"
subscription = "forewarn/v1/#/{unique_tenant}"
[core]
state_dir = "{tmp_path / 'state'}"
tick_interval_s = 3600.0
[store]
path = "{tmp_path / 'telemetry.sqlite'}"
[cases]
url = "sqlite:///{tmp_path / 'cases.sqlite'}"
rules_file = "{ROOT / 'config/rules/heat_pump.yaml'}"
notices_jsonl = "{tmp_path / 'notices.jsonl'}"
""")
    done = subprocess.run([sys.executable, "-m", "forewarn.cli", "--config", str(config), "core"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "core's ingest task stopped" in done.stderr
