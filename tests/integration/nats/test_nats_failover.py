"""A worker killed -9 mid-stream: nothing is lost and no case opens twice.

Two supervised worker processes consume a partitioned stream fed over MQTT by nats-server's
MQTT listener; one is killed with SIGKILL while telemetry flows, the supervisor restarts it, and
it takes its partitions back from their snapshots. Every published sample must be in the store
once, every faulty device must have exactly one case, and no notice may repeat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import nats
import pytest

from core.nats import NatsConfig, ensure_stream
from forewarn.workers import Supervisor, worker_command
from tests.integration.nats.fleet import SINGLE_SERIES_DETECTOR_TOML, SyntheticFleet, publish_mqtt
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

_RULES = """\
rules:
  - name: level_jump
    product: heat_pump
    score_at_least: 0.5
    for: 0s
    severity: warning
    notify_customer: true
"""


def _count(db: Path, sql: str) -> int:
    """One number from ``db``; 0 while a worker has not created the table yet."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


async def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def test_worker_killed_mid_stream_loses_nothing(nats_server: NatsServer, tmp_path: Path,
                                                unique_tenant: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULES)
    store_db, cases_db = tmp_path / "telemetry.sqlite", tmp_path / "cases.sqlite"
    (tmp_path / "forewarn.toml").write_text(
        f'tenant = "{unique_tenant}"\n'
        f'[store]\npath = "{store_db}"\n'
        f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        + SINGLE_SERIES_DETECTOR_TOML
    )
    cfg = NatsConfig(url=nats_server.url, stream=f"FW_{unique_tenant}", partitions=8,
                     ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                     partition_prefix=f"fw.{unique_tenant}", max_bytes=512 * 1024**2)
    argv = worker_command([
        "--config", str(tmp_path / "forewarn.toml"), "core", "--engine", "nats",
        "--nats-url", cfg.url, "--stream-partitions", "8", "--snapshot-interval", "1",
        "--fetch-batch", "16", "--stream-name", cfg.stream, "--stream-max-gb", "0.5",
        "--ingress-subject", cfg.ingress_subject, "--partition-prefix", cfg.partition_prefix,
    ])
    fleet = SyntheticFleet(unique_tenant, devices=24, batch_samples=50, faulty=4, fault_at=500)
    supervisor = Supervisor(range(8), 2, argv)

    async def scenario() -> int:
        # the stream must exist before devices publish: NATS drops what no stream captures
        nc = await nats.connect(cfg.url)
        try:
            await ensure_stream(nc.jetstream(), cfg)
        finally:
            await nc.close()
        runner = asyncio.create_task(supervisor.run())
        try:
            published = await asyncio.to_thread(
                publish_mqtt, nats_server.host, nats_server.mqtt_port, fleet.batches(6))
            await _wait_for(lambda: store_db.exists() and _count(
                store_db, "SELECT count(DISTINCT ts_ms) FROM sample") > 0, 45, "first samples")
            victim = supervisor.workers[0].process
            assert victim is not None
            os.kill(victim.pid, signal.SIGKILL)  # mid-stream: more is published right away
            published += await asyncio.to_thread(
                publish_mqtt, nats_server.host, nats_server.mqtt_port, fleet.batches(10))
            await _wait_for(lambda: supervisor.workers[0].restarts >= 1, 30, "restart")
            expected_rows = published * 5
            await _wait_for(lambda: _count(store_db, "SELECT count(*) FROM sample")
                            >= expected_rows, 45, f"{expected_rows} stored values")
            return published
        finally:
            supervisor.stop()
            await runner

    published = asyncio.run(scenario())
    restarts = [w.restarts for w in supervisor.workers]
    assert restarts == [1, 0], f"unexpected worker exits: {restarts}"
    stored = _count(store_db, "SELECT count(*) FROM sample")
    assert stored == published * 5  # one row per (series, timestamp): nothing lost or doubled
    cases = _count(cases_db, "SELECT count(*) FROM cases")
    per_device = _count(cases_db, "SELECT count(DISTINCT device_id || rule) FROM cases")
    assert cases == per_device, "a device had a case opened twice"
    conn = sqlite3.connect(cases_db)
    try:
        opened = {row[0] for row in conn.execute("SELECT device_id FROM cases")}
    finally:
        conn.close()
    assert {"d0000", "d0001", "d0002", "d0003"} <= opened
    notices = _count(cases_db, "SELECT count(*) FROM notices")
    assert notices == _count(cases_db, "SELECT count(DISTINCT idempotency_key) FROM notices")
