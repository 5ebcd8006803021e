"""Fleets through mappings (issue 22): ``forewarn core`` as a subprocess against a real
Mosquitto ingests devices that publish on their own topics — one JSON object per reading, or
Telegraf-style InfluxDB line protocol — stores them, opens a case when one develops a fault,
and dead-letters a payload that does not fit the mapping with the reason."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.dead_letter import DeadLetterStore
from rules.db import connect
from tests.integration.core_process import CoreProcess, scrape, wait_for
from tests.integration.nats.fleet import FIELDS, publish_mqtt
from tests.servers.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration

DEVICES = ("hp-1", "hp-2", "hp-3")
LEARN, FAULT = 400, 60


def _readings(root: str, start: int, count: int, faulty: bool,
              fmt: str = "json") -> Iterator[tuple[str, bytes, int]]:
    """One reading of 5 fields per message and device, as an existing fleet sends them: a
    JSON object, or a line of line protocol (the device in a tag, the time in ns)."""
    rng = np.random.default_rng(7)
    levels = rng.uniform(20.0, 80.0, (len(DEVICES), len(FIELDS)))
    for i in range(start, start + count):
        for d, device in enumerate(DEVICES):
            values = levels[d] + rng.normal(0.0, 1.0, len(FIELDS))
            if faulty and d == 0:
                values += 12.0
            ts = 1_700_000_000 + 10 * i
            if fmt == "influx":
                fields = ",".join(f"{f}={v:.3f}" for f, v in zip(FIELDS, values, strict=True))
                line = f'hp,host={device},site=a {fields},status="ok" {ts * 10**9}'
                yield f"{root}/site-a", line.encode(), 1
                continue
            body = {"ts": ts, "fw": "2.1", "status": "ok",
                    **{field: round(float(v), 3) for field, v in zip(FIELDS, values,
                                                                     strict=True)}}
            yield f"{root}/site-a/{device}/state", json.dumps(body).encode(), 1


def _case_devices(db: Path, tenant: str) -> set[str]:
    if not db.exists():
        return set()
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("SELECT device_id FROM cases WHERE tenant = ?", (tenant,))
        return {r[0] for r in rows.fetchall()}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


_MAPPINGS = {
    "json": ('topic = "{root}/+site/+device/state"\nformat = "json"\ntime_key = "ts"\n',
             "{root}/+/+/state", "{root}/site-a/hp-2/state", b'{"discharge_temp": 61.5}',
             "no time key 'ts'"),
    "influx": ('topic = "{root}/+site"\nformat = "influx"\ndevice_key = "host"\n',
               "{root}/+", "{root}/site-a", b"hp,host=hp-2 discharge_temp=hot 1700000000",
               "is not a number"),
}


@pytest.mark.parametrize("fmt", list(_MAPPINGS), ids=["plain-json", "line-protocol"])
def test_a_mapped_fleet_reaches_the_store_and_opens_a_case(
        mosquitto: Mosquitto, tmp_path: Path, unique_tenant: str, fmt: str) -> None:
    tenant, root = unique_tenant, f"{unique_tenant}-fleet"
    keys, subscription, bad_topic, bad_payload, reason = (
        part.format(root=root) if isinstance(part, str) else part for part in _MAPPINGS[fmt])
    metrics_port = free_port()
    core = CoreProcess(tmp_path, mosquitto, tenant, extra_core=f"metrics_port = {metrics_port}\n")
    with core.config.open("a") as config:
        config.write(f'\n[[ingest.mapping]]\nname = "acme-{fmt}"\n{keys}'
                     f'tenant = "{tenant}"\nproduct = "heat_pump"\n')
    core.start()
    try:
        wait_for(lambda: subscription in core.log_tail(), 60,
                 "core to subscribe to the mapped topic", core)
        publish_mqtt(mosquitto.host, mosquitto.port,
                     _readings(root, 0, LEARN, faulty=False, fmt=fmt))
        wait_for(lambda: core.stored() >= len(DEVICES) * LEARN, 120,
                 "the learning readings", core)
        publish_mqtt(mosquitto.host, mosquitto.port,
                     _readings(root, LEARN, FAULT, faulty=True, fmt=fmt))
        # a reading that does not fit the mapping, and the last round redelivered
        bad = [(bad_topic, bad_payload, 1)]
        again = list(_readings(root, LEARN + FAULT - 1, 1, faulty=True, fmt=fmt))
        publish_mqtt(mosquitto.host, mosquitto.port, bad + again)
        wait_for(lambda: "hp-1" in _case_devices(core.cases_db, tenant), 120,
                 "a case of the faulty device", core)
        wait_for(lambda: core.stored() >= len(DEVICES) * (LEARN + FAULT), 60,
                 "the fault's readings", core)
        # the redelivered round may still be on its way after the stored count is reached
        wait_for(lambda: (scrape(metrics_port) or {}).get(
            'forewarn_batches_dropped_total{reason="duplicate"}', 0) >= len(DEVICES), 60,
            "the redelivered round dropped as duplicates", core)
        engine = connect(f"sqlite:///{core.cases_db}")
        try:
            wait_for(lambda: any(d.reason == "mapping_mismatch"
                                 for d in DeadLetterStore(engine).letters()), 30,
                     "the dead letter", core)
            letter = next(d for d in DeadLetterStore(engine).letters()
                          if d.reason == "mapping_mismatch")
        finally:
            engine.dispose()
        assert core.stop() == 0
    finally:
        core.close()
    assert letter.topic == bad_topic
    assert reason in letter.detail
    # every reading stored once; the redelivered one was dropped as a duplicate
    assert core.stored() == len(DEVICES) * (LEARN + FAULT)
    log = core.logs[0].read_text()
    assert f"{len(DEVICES)} duplicate batches dropped" in log, log[-3000:]
    assert _case_devices(core.cases_db, tenant) == {"hp-1"}
