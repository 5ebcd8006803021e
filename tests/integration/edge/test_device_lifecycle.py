"""Device lifecycle through a real Mosquitto (password per device, the shipped ACL): core's
lifecycle listener keeps online/offline/last seen in the case database, a goodbye raises no
no-data case, a last will feeds the offline rule, an agent's event reaches the rules, and
``forewarn devices config set`` reaches the agent whose report ``devices show`` prints
(issue 16.3)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.config import MqttConfig
from core.events import ScoredBatch
from core.lifecycle import LifecycleListener
from rules.cases import CaseBook
from rules.db import DeviceRow, connect
from rules.model import parse_rules
from rules.pipeline import RulesPipeline
from tests.integration.edge.agents import device_uplink, kill_agent, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
RULES = """
rules:
  - name: device_offline
    offline: 6h
  - name: silent
    no_data: 2h
  - name: agent_trip
    when: {event: {detector: agent, field: high_pressure_trip, within: 1h}}
    for: 0s
"""


def _forewarn(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "forewarn.cli", "devices", *args, "--config",
                           str(config)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_lifecycle_through_mosquitto(secured_broker, tmp_path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    port, passwords = secured_broker.port, secured_broker.passwords
    db_url = f"sqlite:///{tmp_path / 'cases.sqlite'}"
    engine = connect(db_url)
    rules = RulesPipeline(parse_rules(RULES, source="lifecycle.yaml"),
                          CaseBook(engine, channel="terminal"))
    book = rules.lifecycle.book
    mqtt = MqttConfig(port=port, username="forewarn-core", password=passwords["forewarn-core"],
                      client_id=f"core-{tenant}")
    config = tmp_path / "forewarn.toml"
    config.write_text(f'tenant = "{tenant}"\n[mqtt]\nport = {port}\nusername = "forewarn-core"\n'
                      f'password = "{passwords["forewarn-core"]}"\n[cases]\nurl = "{db_url}"\n')

    def row(device: str) -> DeviceRow | None:
        return book.get(tenant, device)

    def state(device: str) -> tuple[str | None, str | None]:
        found = row(device)
        return (found.state, found.reason) if found else (None, None)

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}
        listener = LifecycleListener(mqtt, rules.handle_lifecycle_in_thread)
        listening = asyncio.create_task(listener.run())
        await asyncio.wait_for(listener.connected.wait(), 10)
        # hp-a: online, raises its own event, is reconfigured, then says goodbye
        a = device_uplink(port, tenant, "hp-a", passwords["hp-a"], tmp_path / "a.sqlite")
        async with a:
            await until(lambda: state("hp-a") == ("online", None), "hp-a online")
            a.agent.add_event("high_pressure_trip", "alarm", {"bar": 31.5})
            a.notify()
            await until(lambda: (row("hp-a") or DeviceRow()).last_event
                         == "high_pressure_trip", "event stored")
            now = time.time()
            await rules.handle_in_thread(ScoredBatch(tenant, "hp-a", "heat_pump", ("a",),
                                           np.array([now]), np.ones((1, 1)),
                                           np.zeros((1, 1))))
            seen["trip_cases"] = [c.rule for c in rules.opened]
            setter = await asyncio.to_thread(_forewarn, config, "config", "set", "hp-a",
                                             "batch_max_samples=7", "--wait", "20")
            seen["set"] = (setter.returncode, setter.stdout, setter.stderr)
            await until(lambda: bool((row("hp-a") or DeviceRow()).reported_json),
                         "report stored")
            seen["batcher"] = a.agent.batcher.max_samples
        await until(lambda: state("hp-a") == ("offline", "shutdown"), "hp-a goodbye")
        # hp-b: killed, so the broker publishes its last will
        seen["will_at"] = await kill_agent(port, tenant, "hp-b", passwords["hp-b"], tmp_path,
                                           state)
        listening.cancel()
        return seen

    seen = asyncio.run(scenario())

    # the agent's event reached the rules as an event
    assert seen["trip_cases"] == ["agent_trip"]
    code, out, err = seen["set"]  # type: ignore[misc]
    assert code == 0, err
    assert "desired config revision 1 published" in out and "reported: applied" in out
    assert seen["batcher"] == 7
    shown = _forewarn(config, "show", "hp-a", "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["state"], info["reason"]) == ("offline", "shutdown")
    assert info["desired"] == {"revision": 1, "batch_max_samples": 7}
    assert info["reported"]["status"] == "applied"
    assert info["reported"]["applied"]["batch_max_samples"] == 7
    assert info["last_event"] == "high_pressure_trip" and info["last_seen"] is not None
    listed = _forewarn(config, "list")
    assert f"{tenant}/hp-a\toffline (shutdown)" in listed.stdout
    assert f"{tenant}/hp-b\toffline (connection_lost)" in listed.stdout

    # ten hours later: hp-a said goodbye (no no-data case); hp-b's last will is 6 h old
    before = len(rules.opened)
    rules.tick(time.time() + 10 * 3600)
    opened = [(c.device_id, c.rule) for c in rules.opened[before:]]
    assert opened == [("hp-b", "device_offline")]
    # hp-b comes back: the offline case resolves
    resolved = rules.stats.resolved

    async def back() -> None:
        listener = LifecycleListener(mqtt, rules.handle_lifecycle_in_thread)
        listening = asyncio.create_task(listener.run())
        b = device_uplink(port, tenant, "hp-b", passwords["hp-b"], tmp_path / "b2.sqlite")
        async with b:
            await until(lambda: state("hp-b") == ("online", None), "hp-b back")
        listening.cancel()

    asyncio.run(back())
    assert rules.stats.resolved == resolved + 1
    rules.close()
    engine.dispose()
