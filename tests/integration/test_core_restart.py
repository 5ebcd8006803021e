"""``forewarn core`` (the direct MQTT engine) killed -9 and restarted: it keeps learning and
processes nothing twice.

Core runs as a subprocess against a real Mosquitto. It learns a fleet for 400 samples per
device (the detector's warm-up is 300), snapshots its state and is killed with SIGKILL. Two
devices then develop a fault while it is down (their telemetry waits in core's persistent
session); restarted, core sees only 200 samples of each device, fewer than a warm-up: a case
opens only because the restored detectors go on where they were (with the restore disabled
this test times out waiting for the cases). The fault's batches are then delivered a second
time (what a broker does with messages whose acknowledgement a crash lost): they are dropped
as duplicates, and no case or notice repeats.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.snapshot import decode_snapshot
from tests.integration.core_process import CoreProcess, db_rows, wait_for
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration




def test_core_killed_keeps_learning_and_repeats_nothing(mosquitto: Mosquitto, tmp_path: Path,
                                                        unique_tenant: str) -> None:
    tenant = unique_tenant
    core = CoreProcess(tmp_path, mosquitto, tenant, extra_core="snapshot_interval_s = 0.5\n")

    def snapshot_through(seq: int) -> bool:
        path = core.state_dir / "core-state.npz"
        if not path.exists():
            return False
        try:
            dedup = decode_snapshot(path.read_bytes()).state.dedup
        except (ValueError, OSError, KeyError):
            return False  # being replaced right now
        return len(dedup) == 4 and all(seq in seen for _floor, seen in dedup.values())

    fleet = SyntheticFleet(tenant, devices=4, batch_samples=50, faulty=2, fault_at=400)
    core.create_session()
    core.start()
    try:
        # 1. learn: 400 samples a device, past the 300-sample warm-up; then kill -9
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(8))
        wait_for(lambda: core.stored() == 4 * 400, 120, "the learning samples", core)
        wait_for(lambda: snapshot_through(7), 30, "a snapshot of them", core)
        core.kill()

        # 2. the fault starts while core is down; restarted, it has 200 samples a device
        fault = list(fleet.batches(4))
        publish_mqtt(mosquitto.host, mosquitto.port, fault)
        core.start()
        wait_for(lambda: core.stored() == 4 * 600, 120, "the fault's samples", core)
        devices = f"SELECT device_id FROM cases WHERE tenant = '{tenant}'"
        wait_for(lambda: {"d0000", "d0001"} <= {r[0] for r in db_rows(core.cases_db, devices)},
                 60, "cases of the two faulty devices", core)

        # 3. the fault's batches delivered again, then one new round to know they went through
        publish_mqtt(mosquitto.host, mosquitto.port, fault)
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(1))
        wait_for(lambda: core.stored() == 4 * 650, 60, "the last round", core)
        wait_for(lambda: snapshot_through(12), 30, "a snapshot of it", core)
        assert core.stop() == 0
    finally:
        core.close()

    restarted = core.logs[1].read_text()
    assert "state restored: 20 series" in restarted, restarted[-3000:]
    dropped = re.search(r"(\d+) duplicate batches dropped", restarted)
    # the 16 delivered again, and any the broker redelivered on its own
    assert dropped is not None and int(dropped.group(1)) >= 16, restarted[-3000:]
    cases = db_rows(core.cases_db, f"SELECT device_id, rule FROM cases WHERE tenant = '{tenant}'")
    assert sorted(d for d, _ in cases if d in ("d0000", "d0001")) == ["d0000", "d0001"]
    assert len(cases) == len(set(cases)), f"a case opened twice: {cases}"
    keys = db_rows(core.cases_db, "SELECT idempotency_key FROM notices")
    assert keys and len(keys) == len(set(keys))
    lines = core.notices.read_text().splitlines()
    assert len(lines) == len(set(lines)), "a notice was delivered twice"
