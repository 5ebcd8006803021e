"""Time-driven rules in NATS workers: a device that stops sending gets its "no data" case from
the worker that owns its partition, once; no other worker judges it.

Also: the partition a worker computes for a device is the one nats-server's transform chose.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
from nats.js.client import JetStreamContext

from core.nats import NatsConfig, ensure_stream
from core.nats.stream import partition_of_subject, topic_of_subject
from edge.schema import telemetry_topic
from forewarn.workers import device_partition, worker_command
from tests.integration.nats.fleet import FIELDS, publish_mqtt
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

#: the rule's no_data window and the workers' tick interval, in seconds
_NO_DATA_S = 3.0
_TICK_S = 0.5
_RULES = f"""\
rules:
  - name: device_silent
    product: heat_pump
    no_data: {_NO_DATA_S:g}s
    severity: info
    notify_customer: false
"""


def _payload(device_id: str, seq: int, t: float) -> bytes:
    """One batch of two samples ending at ``t``."""
    return json.dumps({
        "v": 1, "device_id": device_id, "boot_id": "b1", "seq": seq, "product": "heat_pump",
        "fields": list(FIELDS), "t": [t - 0.5, t],
        "values": [[20.0 + i for i in range(len(FIELDS))]] * 2,
    }).encode()


@asynccontextmanager
async def _jetstream(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def test_device_partition_is_the_servers(nats_server: NatsServer, unique_tenant: str) -> None:
    # a tenant wildcard (both tokens hashed) and a literal tenant (the device alone)
    wild = NatsConfig(url=nats_server.url, stream=f"PW_{unique_tenant}", partitions=7,
                      ingress_subject=f"{unique_tenant}.v1.*.*.telemetry",
                      partition_prefix=f"pw.{unique_tenant}", max_bytes=16 * 1024**2)
    literal = NatsConfig(url=nats_server.url, stream=f"PL_{unique_tenant}", partitions=5,
                         ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                         partition_prefix=f"pl.{unique_tenant}", max_bytes=16 * 1024**2)
    devices = [f"hp-{i}" for i in range(40)] + ["hp.7", "a.b.c"]

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            for cfg in (wild, literal):
                await ensure_stream(js, cfg)
            for tenant in ("acme", "beta.co"):
                for device_id in devices:
                    levels = [unique_tenant, "v1", tenant.replace(".", "//"),
                              device_id.replace(".", "//"), "telemetry"]
                    await js.publish(".".join(levels), b"{}")
            # the literal-tenant stream is fed over MQTT, as devices do ('.' in a level)
            await asyncio.to_thread(publish_mqtt, nats_server.host, nats_server.mqtt_port, [
                (telemetry_topic(unique_tenant, d), b"{}", 1) for d in devices])
            for cfg, tenants in ((wild, ("acme", "beta.co")), (literal, (unique_tenant,))):
                info = await js.stream_info(cfg.stream, subjects_filter=">")
                # topic_of_subject gives forewarn/v1/T/D/telemetry whatever the ingress prefix
                stored = {topic_of_subject(s, cfg): partition_of_subject(s)
                          for s in info.state.subjects or {}}
                wanted = {telemetry_topic(t, d): device_partition(cfg, t, d)
                          for t in tenants for d in devices}
                assert stored == wanted
                assert len(set(stored.values())) == cfg.partitions

    asyncio.run(scenario())
    assert device_partition(literal, "other-tenant", "hp-1") is None


def _cases(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT device_id, rules FROM cases")]
    except sqlite3.OperationalError:
        return []  # no table yet
    finally:
        conn.close()


def _state(db: Path, device_id: str) -> str | None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT status FROM alarm_states WHERE device_id = ?",
                           (device_id,)).fetchone()
        return None if row is None else str(row[0])
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


async def _holds(check: Callable[[], bool], until: float, what: str) -> None:
    """Poll ``check`` until the monotonic time ``until``; fail at the first time it is false."""
    while True:
        assert check(), what
        if time.monotonic() >= until:
            return
        await asyncio.sleep(0.2)


async def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def test_worker_opens_one_no_data_case_for_a_device_that_stops(
        nats_server: NatsServer, tmp_path: Path, unique_tenant: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULES)
    cases_db = tmp_path / "cases.sqlite"
    cfg = NatsConfig(url=nats_server.url, stream=f"TK_{unique_tenant}", partitions=4,
                     ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                     partition_prefix=f"tk.{unique_tenant}", snapshot_bucket=f"tk-{unique_tenant}",
                     fetch_batch=8, snapshot_interval_s=1.0, max_bytes=64 * 1024**2)
    config = tmp_path / "forewarn.toml"
    config.write_text(
        f'tenant = "{unique_tenant}"\n'
        f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
        f'[cases]\nurl = "sqlite:///{cases_db}"\nrules_file = "{rules}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        f"[core]\ntick_interval_s = {_TICK_S}\n"
        f'[nats]\nurl = "{cfg.url}"\nstream = "{cfg.stream}"\n'
        f'ingress_subject = "{cfg.ingress_subject}"\npartition_prefix = "{cfg.partition_prefix}"\n'
        f'snapshot_bucket = "{cfg.snapshot_bucket}"\npartitions = 4\nfetch_batch = 8\n'
        "snapshot_interval_s = 1.0\nmax_bytes = 67108864\n")
    slices = {"a": [0, 1], "b": [2, 3]}
    candidates = [f"hp-{i:03d}" for i in range(100)]

    def in_slice(name: str) -> list[str]:
        return [d for d in candidates if device_partition(cfg, unique_tenant, d) in slices[name]]

    quiet, steady_a = in_slice("a")[:2]  # worker a owns both
    steady_b = in_slice("b")[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    logs: list[Path] = []

    async def start(name: str) -> asyncio.subprocess.Process:
        ready = tmp_path / f"ready-{name}-{len(logs)}"
        log = tmp_path / f"worker-{name}-{len(logs)}.log"
        logs.append(log)
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(*worker_command([
                "-v", "--config", str(config), "core", "--engine", "nats",
                "--own", ",".join(map(str, slices[name])), "--ready-file", str(ready)]),
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + 90
        while not ready.exists():
            assert proc.returncode is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"worker {name} not ready"
            await asyncio.sleep(0.2)
        return proc

    async def scenario() -> None:
        async with _jetstream(nats_server) as js:
            await ensure_stream(js, cfg)
            workers = {"a": await start("a"), "b": await start("b")}
            sending = {quiet, steady_a, steady_b}

            async def send_forever() -> None:
                # the devices still talking talk on through every worker restart
                seq = 0
                while True:
                    seq += 1
                    for device_id in sorted(sending):
                        await js.publish(f"forewarn.v1.{unique_tenant}.{device_id}.telemetry",
                                         _payload(device_id, seq, time.time()))
                    await asyncio.sleep(0.5)

            sender = asyncio.create_task(send_forever())
            try:
                await _wait_for(lambda: _state(cases_db, quiet) == "normal", 60,
                                "the quiet device's state")
                sending.discard(quiet)
                # b restarts holding a's devices' states as they were: it must not judge them
                workers["b"].send_signal(signal.SIGKILL)
                await workers["b"].wait()
                workers["b"] = await start("b")
                b_ready = time.monotonic()
                await _wait_for(lambda: bool(_cases(cases_db)), 60, "the silent device's case")
                # until the restarted b has ticked past a whole no_data window (and two ticks
                # more), only the quiet device goes silent: b judges none of a's devices
                await _holds(lambda: _cases(cases_db) == [(quiet, "device_silent")],
                             b_ready + _NO_DATA_S + 2 * _TICK_S + 1.0,
                             "only the quiet device has a case")

                # a crashes after opening the case but before saving the alarm state: the
                # state in the database is still "normal", the restarted a fires again
                workers["a"].send_signal(signal.SIGKILL)
                await workers["a"].wait()
                conn = sqlite3.connect(cases_db, timeout=10)
                with conn:
                    conn.execute("UPDATE alarm_states SET status = 'normal' "
                                 "WHERE device_id = ?", (quiet,))
                conn.close()
                workers["a"] = await start("a")
                await _wait_for(lambda: _state(cases_db, quiet) == "no_data", 60,
                                "the restarted worker's tick")
                assert _cases(cases_db) == [(quiet, "device_silent")]
            finally:
                sender.cancel()
                for proc in workers.values():
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in workers.values():
                    await asyncio.wait_for(proc.wait(), 60)

    asyncio.run(scenario())
