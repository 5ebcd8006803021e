"""``forewarn core`` opens one fleet incident when several devices of one firmware cohort
develop the same fault: the team hears of the incident once, each customer at most once.

Core runs as a subprocess against a real Mosquitto, configured by its forewarn.toml alone
(``[incidents]``, ``[customers]``). Six heat pumps are in the customer registry, all on
firmware 9.0.0 there; four of them say in their retained status messages that they run 9.1.0
(the firmware a device reports wins over the registry's). After the detectors learned, those
four develop the same fault: their cases of the one rule open an incident over the cohort
``heat_pump/firmware=9.1.0``, and the delivered notices (the terminal channel's JSON lines)
hold one team notice for the incident and no customer message twice.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from paho.mqtt import publish

from edge.schema import StatusMessage, status_topic
from tests.integration.core_process import CoreProcess, db_rows, wait_for
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

DEVICES = 6
FAULTY = 4




def _registry(path: Path, tenant: str) -> None:
    lines = [f"tenant: {tenant}", "customers:"]
    lines += [f"  - {{id: c{i}, contact: {{address: c{i}@example.com}}}}" for i in range(DEVICES)]
    lines.append("devices:")
    lines += [f'  d{i:04d}: {{customer: c{i}, product: heat_pump, firmware: "9.0.0"}}'
              for i in range(DEVICES)]
    path.write_text("\n".join(lines) + "\n")


def _publish_statuses(broker: Mosquitto, tenant: str) -> None:
    """Each device's retained birth message, as its agent publishes it on connecting."""
    publish.multiple([{
        "topic": status_topic(tenant, f"d{i:04d}"), "qos": 1, "retain": True,
        "payload": StatusMessage(device_id=f"d{i:04d}", boot_id="boot1", state="online",
                                 firmware="9.1.0" if i < FAULTY else "9.0.0"
                                 ).model_dump_json()}
        for i in range(DEVICES)], hostname=broker.host, port=broker.port)


def _delivered(core: CoreProcess) -> list[dict[str, object]]:
    if not core.notices.exists():
        return []
    return [json.loads(line) for line in core.notices.read_text().splitlines() if line]


def test_one_firmware_cohort_one_incident(mosquitto: Mosquitto, tmp_path: Path,
                                          unique_tenant: str) -> None:
    tenant = unique_tenant
    _registry(tmp_path / "customers.yaml", tenant)
    core = CoreProcess(tmp_path, mosquitto, tenant, extra=(
        f'[customers]\nfile = "{tmp_path / "customers.yaml"}"\n'
        "[incidents]\nmin_devices = 3\nwindow_h = 24\n"))
    fleet = SyntheticFleet(tenant, devices=DEVICES, batch_samples=50, faulty=FAULTY,
                           fault_at=400)
    core.create_session()
    core.start()
    try:
        _publish_statuses(mosquitto, tenant)
        firmware = f"SELECT device_id, firmware FROM devices WHERE tenant = '{tenant}'"
        wait_for(lambda: len([r for r in db_rows(core.cases_db, firmware) if r[1]]) == DEVICES,
                 60, "every device's reported firmware", core)
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(8))  # learn: 400 samples
        wait_for(lambda: core.stored() == DEVICES * 400, 120, "the learning samples", core)
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(4))  # the fault
        incidents = f"SELECT id, cohort, rule, devices FROM incidents WHERE tenant = '{tenant}'"
        wait_for(lambda: any(r[3] == FAULTY for r in db_rows(core.cases_db, incidents)), 120,
                 "one incident over the four faulty devices", core)
        pending = "SELECT count(*) FROM notices WHERE status = 'pending'"
        wait_for(lambda: db_rows(core.cases_db, pending) == [(0,)], 60,
                 "every notice delivered", core)
        assert core.stop() == 0
    finally:
        core.close()

    rows = db_rows(core.cases_db, incidents)
    assert [(cohort, devices) for _, cohort, _, devices in rows] == [
        ("heat_pump/firmware=9.1.0", FAULTY)], rows
    linked = db_rows(core.cases_db, "SELECT c.device_id FROM incident_cases i JOIN cases c "
                                  "ON c.id = i.case_id")
    assert {d for (d,) in linked} == {f"d{i:04d}" for i in range(FAULTY)}
    cases = db_rows(core.cases_db, f"SELECT device_id FROM cases WHERE tenant = '{tenant}'")
    assert {d for (d,) in cases} == {f"d{i:04d}" for i in range(FAULTY)}, cases

    delivered = _delivered(core)
    team = [n for n in delivered if n["audience"] == "team"]
    assert [n["kind"] for n in team].count("incident") == 1, team
    # the team heard of each case alone only before the third made it an incident
    assert len([n for n in team if n["kind"] == "opened"]) <= 2, team
    customers = Counter(str(n["device_id"]) for n in delivered if n["audience"] == "customer")
    assert set(customers) == {f"d{i:04d}" for i in range(FAULTY)}, customers
    assert max(customers.values()) == 1, customers
    keys = [n["idempotency_key"] for n in delivered]
    assert len(keys) == len(set(keys)), "a notice was delivered twice"
