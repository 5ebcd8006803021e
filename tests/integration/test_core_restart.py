"""``forewarn core`` (the direct MQTT engine) killed -9 and restarted: it keeps learning and
processes nothing twice.

Core runs as a subprocess against a real Mosquitto. It learns a fleet for 400 samples per
device (the detector's warm-up is 300), snapshots its state and is killed with SIGKILL. Two
devices then develop a fault while it is down (their telemetry waits in core's persistent
session); restarted, core sees only 200 samples of each device, fewer than a warm-up: a case
opens only because the restored detectors go on where they were. The fault's batches are then
delivered a second time (what a broker does with messages whose acknowledgement a crash
lost): they are dropped as duplicates, and no case or notice repeats.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.snapshot import decode_snapshot
from core.store.embedded import EmbeddedStore
from tests.integration.nats.fleet import SINGLE_SERIES_DETECTOR_TOML, SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]
_RULES = """\
rules:
  - name: level_jump
    product: heat_pump
    score_at_least: 0.5
    for: 0s
    severity: warning
    notify_customer: true
"""


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
              core: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if core is not None and core.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None else ""
            raise AssertionError(f"core exited ({core.returncode}) waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # core has not created the table yet
    finally:
        conn.close()


def _create_session(broker: Mosquitto, client_id: str, subscription: str) -> None:
    """Open core's persistent session as core would, so telemetry waits for it from now on."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=props)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.loop_start()
    try:
        client.subscribe(subscription, qos=1)
        assert subscribed.wait(10.0), "mosquitto did not acknowledge the subscription"
    finally:
        client.disconnect()
        client.loop_stop()


def test_core_killed_keeps_learning_and_repeats_nothing(mosquitto: Mosquitto, tmp_path: Path,
                                                        unique_tenant: str) -> None:
    tenant = unique_tenant
    client_id = f"core-{uuid.uuid4().hex[:8]}"
    subscription = f"forewarn/v1/{tenant}/+/telemetry"
    store_db, cases_db = tmp_path / "telemetry.sqlite", tmp_path / "cases.sqlite"
    state_dir = tmp_path / "state"
    (tmp_path / "rules.yaml").write_text(_RULES)
    config = tmp_path / "forewarn.toml"
    config.write_text(
        f'tenant = "{tenant}"\n'
        "[broker]\nembedded = false\n"
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'client_id = "{client_id}"\nsubscription = "{subscription}"\n'
        f'[core]\nstate_dir = "{state_dir}"\nsnapshot_interval_s = 0.5\n'
        f'limits_file = "{tmp_path / "no-limits.yaml"}"\n'
        f'[store]\npath = "{store_db}"\n'
        f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{tmp_path / "rules.yaml"}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        + SINGLE_SERIES_DETECTOR_TOML)
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    logs: list[Path] = []

    def start_core() -> subprocess.Popen[bytes]:
        log = tmp_path / f"core-{len(logs)}.log"
        logs.append(log)
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "forewarn.cli", "-v", "--config", str(config), "core"],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stored() -> int:
        if not store_db.exists():
            return 0
        store = EmbeddedStore(store_db)
        try:
            return store.count_samples(tenant)
        finally:
            store.close()

    def snapshot_through(seq: int) -> bool:
        path = state_dir / "core-state.npz"
        if not path.exists():
            return False
        try:
            dedup = decode_snapshot(path.read_bytes()).state.dedup
        except (ValueError, OSError, KeyError):
            return False  # being replaced right now
        return len(dedup) == 4 and all(seq in seen for _floor, seen in dedup.values())

    fleet = SyntheticFleet(tenant, devices=4, batch_samples=50, faulty=2, fault_at=400)
    _create_session(mosquitto, client_id, subscription)
    core = start_core()
    try:
        # 1. learn: 400 samples a device, past the 300-sample warm-up; then kill -9
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(8))
        _wait_for(lambda: stored() == 4 * 400, 120, "the learning samples", core, logs[-1])
        _wait_for(lambda: snapshot_through(7), 30, "a snapshot of them", core, logs[-1])
        core.send_signal(signal.SIGKILL)
        core.wait(10)

        # 2. the fault starts while core is down; restarted, it has 200 samples a device
        fault = list(fleet.batches(4))
        publish_mqtt(mosquitto.host, mosquitto.port, fault)
        core = start_core()
        _wait_for(lambda: stored() == 4 * 600, 120, "the fault's samples", core, logs[-1])
        faulty_cases = f"SELECT device_id FROM cases WHERE tenant = '{tenant}'"
        _wait_for(lambda: {"d0000", "d0001"} <= {r[0] for r in _rows(cases_db, faulty_cases)},
                  60, "cases of the two faulty devices", core, logs[-1])

        # 3. the fault's batches delivered again, then one new round to know they went through
        publish_mqtt(mosquitto.host, mosquitto.port, fault)
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(1))
        _wait_for(lambda: stored() == 4 * 650, 60, "the last round", core, logs[-1])
        _wait_for(lambda: snapshot_through(12), 30, "a snapshot of it", core, logs[-1])
        core.send_signal(signal.SIGTERM)
        assert core.wait(60) == 0
    finally:
        if core.poll() is None:
            core.kill()
            core.wait()

    restarted = logs[1].read_text()
    assert "state restored: 20 series" in restarted, restarted[-3000:]
    assert "16 duplicate batches dropped" in restarted, restarted[-3000:]
    cases = _rows(cases_db, f"SELECT device_id, rule FROM cases WHERE tenant = '{tenant}'")
    assert sorted(d for d, _ in cases if d in ("d0000", "d0001")) == ["d0000", "d0001"]
    assert len(cases) == len(set(cases)), f"a case opened twice: {cases}"
    keys = _rows(cases_db, "SELECT idempotency_key FROM notices")
    assert keys and len(keys) == len(set(keys))
    lines = (tmp_path / "notices.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)), "a notice was delivered twice"
