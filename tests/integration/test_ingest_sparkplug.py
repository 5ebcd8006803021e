"""A Sparkplug B edge node through a mapping (issue 22): ``forewarn core`` as a subprocess against
a real Mosquitto takes the node's births (metric aliases), its devices' data sent by alias only,
a fault, and a device's death; the readings reach the store, a case opens for the faulty device,
data of a device that was never born is dead-lettered with the reason, and the death is not: it
takes the device offline in the rules' device book. Payloads are encoded by pysparkplug, as an
edge node built on it sends them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pysparkplug as spb
import pytest

from core.dead_letter import DeadLetterStore
from rules.db import connect
from tests.integration.core_process import CoreProcess, wait_for
from tests.integration.nats.fleet import FIELDS, publish_mqtt
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

DEVICES = ("hp-1", "hp-2", "hp-3")
LEARN, FAULT = 400, 60
NODE = "edge-1"
T0_MS = 1_700_000_000_000


def _metric(name: str | None, alias: int, value: float | int,
            datatype: spb.DataType = spb.DataType.DOUBLE) -> spb.Metric:
    return spb.Metric(timestamp=None, name=name, datatype=datatype, value=value, alias=alias)


class _EdgeNode:
    """One Sparkplug edge node: its seq runs over every message it sends (0–255, wrapping)."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.seq = 0
        self.levels = np.random.default_rng(7).uniform(20.0, 80.0, (len(DEVICES), len(FIELDS)))

    def _next(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % 256
        return seq

    def topic(self, kind: str, device: str = "") -> str:
        return f"spBv1.0/{self.group}/{kind}/{NODE}" + (f"/{device}" if device else "")

    def births(self) -> Iterator[tuple[str, bytes, int]]:
        yield self.topic("NBIRTH"), spb.NBirth(timestamp=T0_MS, seq=self._next(), metrics=(
            _metric("bdSeq", 0, 0, spb.DataType.INT64),)).encode(include_dtypes=True), 0
        for d, device in enumerate(DEVICES):
            metrics = tuple(_metric(field, alias, round(float(level), 3)) for alias, (field, level)
                            in enumerate(zip(FIELDS, self.levels[d], strict=True), start=1))
            yield (self.topic("DBIRTH", device), spb.DBirth(
                timestamp=T0_MS - 1000, seq=self._next(), metrics=metrics
            ).encode(include_dtypes=True), 0)

    def data(self, start: int, count: int, faulty: bool) -> Iterator[tuple[str, bytes, int]]:
        """One DDATA per device and round: 5 metrics by alias only, no names, no datatypes."""
        rng = np.random.default_rng(11 + start)
        for i in range(start, start + count):
            for d, device in enumerate(DEVICES):
                values = self.levels[d] + rng.normal(0.0, 1.0, len(FIELDS))
                if faulty and d == 0:
                    values += 12.0
                metrics = tuple(_metric(None, alias, round(float(v), 3))
                                for alias, v in enumerate(values, start=1))
                yield (self.topic("DDATA", device), spb.DData(
                    timestamp=T0_MS + 10_000 * i, seq=self._next(), metrics=metrics).encode(), 1)

    def death(self, device: str) -> tuple[str, bytes, int]:
        return (self.topic("DDEATH", device),
                spb.DDeath(timestamp=T0_MS + 10_000 * (LEARN + FAULT), seq=self._next()).encode(),
                0)


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


def test_a_sparkplug_edge_node_reaches_the_store_and_opens_a_case(
        mosquitto: Mosquitto, tmp_path: Path, unique_tenant: str) -> None:
    tenant = unique_tenant
    group = f"{tenant}-plant"
    node = _EdgeNode(group)
    core = CoreProcess(tmp_path, mosquitto, tenant)
    with core.config.open("a") as config:
        config.write(f'\n[[ingest.mapping]]\nname = "plant"\ntopic = "spBv1.0/{group}/#"\n'
                     f'format = "sparkplug"\ntenant = "{tenant}"\nproduct = "heat_pump"\n')
    core.start()
    try:
        wait_for(lambda: f"spBv1.0/{group}/#" in core.log_tail(), 60,
                 "core to subscribe to the Sparkplug group", core)
        wait_for(lambda: f"subscribed to spBv1.0/{group}/DBIRTH/+/+" in core.log_tail(), 60,
                 "the lifecycle listener to subscribe to births and deaths", core)
        publish_mqtt(mosquitto.host, mosquitto.port, node.births())
        publish_mqtt(mosquitto.host, mosquitto.port, node.data(0, LEARN, faulty=False))
        # the births' values are readings too (one per device, at T0 - 1 s)
        wait_for(lambda: core.stored() >= len(DEVICES) * (LEARN + 1), 120,
                 "the learning readings", core)
        publish_mqtt(mosquitto.host, mosquitto.port, node.data(LEARN, FAULT, faulty=True))
        # data by alias of a device that was never born; then a device dies
        unborn = spb.DData(timestamp=T0_MS, seq=node._next(), metrics=(
            _metric(None, 1, 1.0),)).encode()
        publish_mqtt(mosquitto.host, mosquitto.port,
                     [(node.topic("DDATA", "hp-9"), unborn, 1), node.death("hp-2")])
        wait_for(lambda: "hp-1" in _case_devices(core.cases_db, tenant), 120,
                 "a case of the faulty device", core)
        wait_for(lambda: core.stored() >= len(DEVICES) * (LEARN + 1 + FAULT), 60,
                 "the fault's readings", core)
        wait_for(lambda: _device_states(core.cases_db, tenant).get("hp-2", ("",))[0]
                 == "offline", 30, "the death in the device book", core)
        engine = connect(f"sqlite:///{core.cases_db}")
        try:
            wait_for(lambda: any(d.reason == "mapping_mismatch"
                                 for d in DeadLetterStore(engine).letters()), 30,
                     "the dead letter", core)
            letters = DeadLetterStore(engine).letters()
        finally:
            engine.dispose()
        assert core.stop() == 0
    finally:
        core.close()
    assert [(d.reason, d.topic) for d in letters] == [
        ("mapping_mismatch", f"spBv1.0/{group}/DDATA/{NODE}/hp-9")]
    assert "alias 1 unknown" in letters[0].detail
    assert core.stored() == len(DEVICES) * (LEARN + 1 + FAULT)
    assert _case_devices(core.cases_db, tenant) == {"hp-1"}
    # the births said online, the death offline: the rules' device book (the console's)
    assert _device_states(core.cases_db, tenant) == {
        "hp-1": ("online", None), "hp-2": ("offline", "connection_lost"),
        "hp-3": ("online", None)}


def _device_states(db: Path, tenant: str) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("SELECT device_id, state, reason FROM devices WHERE tenant = ?",
                            (tenant,))
        return {r[0]: (r[1], r[2]) for r in rows.fetchall()}
    finally:
        conn.close()
