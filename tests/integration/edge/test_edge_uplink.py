"""The uplink against a real broker: remote config, birth and last will, credentials."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import Batcher
from edge.queue import DiskQueue
from edge.schema import (
    ConfigReport,
    StatusMessage,
    TelemetryBatch,
    config_desired_topic,
    config_reported_topic,
    status_topic,
)
from edge.uplink import BrokerConfig, Uplink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _core(port: int, password: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="forewarn-core", password=password,
                          identifier=f"core-{uuid.uuid4().hex[:6]}",
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=5.0)


def test_remote_config_is_applied_and_a_bad_one_rejected(secured_broker, tmp_path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    queue = DiskQueue(tmp_path / "q.sqlite")
    agent = EdgeAgent(tenant, Batcher("hp-a", "boot1", "heat_pump", ("a",), max_samples=60),
                      queue=queue)
    broker = BrokerConfig("127.0.0.1", secured_broker.port, username="hp-a",
                          password=secured_broker.passwords["hp-a"])
    desired = config_desired_topic(tenant, "hp-a")
    reported = config_reported_topic(tenant, "hp-a")

    async def scenario() -> list[ConfigReport]:
        reports: list[ConfigReport] = []
        async with _core(secured_broker.port, secured_broker.passwords["forewarn-core"]) as core:
            await core.subscribe(reported, qos=1)
            # retained before the device connects: it gets it on subscribe
            await core.publish(desired, b'{"revision": 1, "batch_max_samples": 5}', qos=1,
                               retain=True)
            async with Uplink(agent, broker, backoff=Backoff(0.05, 0.5)):
                async with asyncio.timeout(10):
                    async for message in core.messages:
                        assert isinstance(message.payload, bytes)
                        reports.append(ConfigReport.model_validate_json(message.payload))
                        if len(reports) == 1:
                            await core.publish(
                                desired, b'{"revision": 2, "batch_max_samples": 0, "x": 1}',
                                qos=1, retain=True)
                        else:
                            break
        return reports

    try:
        applied, rejected = asyncio.run(scenario())
    finally:
        queue.close()
    assert (applied.status, applied.revision, applied.applied["batch_max_samples"]) == (
        "applied", 1, 5)
    assert rejected.status == "rejected"
    assert "batch_max_samples" in (rejected.reason or "") and "x" in (rejected.reason or "")
    assert rejected.applied["batch_max_samples"] == 5 == agent.batcher.max_samples


def test_birth_then_last_will_when_the_agent_is_killed(secured_broker, tmp_path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    config = tmp_path / "edge.toml"
    config.write_text(f"""
tenant = "{tenant}"
device_id = "hp-b"
firmware = "1.2.3"
[broker]
port = {secured_broker.port}
username = "hp-b"
[queue]
path = "{tmp_path / 'q.sqlite'}"
[source]
sample_period_s = 0.05
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "FOREWARN_EDGE_BROKER__PASSWORD": secured_broker.passwords["hp-b"]}
    topic = status_topic(tenant, "hp-b")

    async def scenario() -> list[StatusMessage]:
        statuses: list[StatusMessage] = []
        async with _core(secured_broker.port, secured_broker.passwords["forewarn-core"]) as core:
            await core.subscribe(topic, qos=1)
            agent = subprocess.Popen(
                [sys.executable, "-m", "forewarn.commands.edge", "run", "--config", str(config)],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            try:
                async with asyncio.timeout(30):
                    async for message in core.messages:
                        assert isinstance(message.payload, bytes)
                        statuses.append(StatusMessage.model_validate_json(message.payload))
                        if statuses[-1].state == "online":
                            agent.kill()
                        else:
                            break
            finally:
                agent.kill()
                agent.wait()
        return statuses

    birth, will = asyncio.run(scenario())
    assert (birth.state, birth.firmware, birth.device_id) == ("online", "1.2.3", "hp-b")
    assert (will.state, will.boot_id) == ("offline", birth.boot_id)


def test_agent_sends_compressed_batches_with_content_type(secured_broker, tmp_path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    queue = DiskQueue(tmp_path / "q.sqlite")
    agent = EdgeAgent(tenant, Batcher("hp-a", "boot1", "heat_pump", ("a", "b"), max_samples=100),
                      queue=queue, compress_above_bytes=256)
    broker = BrokerConfig("127.0.0.1", secured_broker.port, username="hp-a",
                          password=secured_broker.passwords["hp-a"])

    async def scenario() -> tuple[str | None, bytes]:
        async with _core(secured_broker.port, secured_broker.passwords["forewarn-core"]) as core:
            await core.subscribe(f"forewarn/v1/{tenant}/+/telemetry", qos=1)
            async with Uplink(agent, broker) as uplink:
                agent.add_samples(np.arange(100.0), np.ones((100, 2)))
                uplink.notify()
                async with asyncio.timeout(10):
                    async for message in core.messages:
                        assert isinstance(message.payload, bytes)
                        return getattr(message.properties, "ContentType", None), message.payload
        raise AssertionError("no message")

    try:
        content_type, payload = asyncio.run(scenario())
    finally:
        queue.close()
    from edge.schema import decode_payload

    assert content_type == "application/json+zlib"
    assert json.loads(decode_payload(payload))["t"] == list(np.arange(100.0))


def test_records_the_broker_refuses_stay_on_disk(secured_broker, tmp_path) -> None:
    """Credentials of hp-a, topics of hp-b: the ACL refuses, and nothing may be deleted."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    queue = DiskQueue(tmp_path / "q.sqlite")
    agent = EdgeAgent(tenant, Batcher("hp-b", "boot1", "heat_pump", ("a",), max_samples=2),
                      queue=queue)
    broker = BrokerConfig("127.0.0.1", secured_broker.port, username="hp-a",
                          password=secured_broker.passwords["hp-a"])

    async def scenario() -> Uplink:
        async with Uplink(agent, broker, backoff=Backoff(0.05, 0.2)) as uplink:
            agent.add_samples(np.arange(4.0), np.ones((4, 1)))
            uplink.notify()
            async with asyncio.timeout(10):
                while uplink.refusals < 2:  # refused, backed off, refused again
                    await asyncio.sleep(0.02)  # polling a counter until the deadline
        return uplink

    try:
        uplink = asyncio.run(scenario())
        assert uplink.records_acked == 0
        assert "0x87" in (uplink.last_error or "")
        assert queue.depth == 2 and queue.stats().dropped_records == 0
    finally:
        queue.close()


def test_a_record_sent_but_not_deleted_before_a_crash_is_sent_again_same_key(
        secured_broker, tmp_path) -> None:
    """At least once: a crash between PUBACK and delete resends the batch under the same
    (device, boot, seq), which core's dedup drops."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    broker = BrokerConfig("127.0.0.1", secured_broker.port, username="hp-a",
                          password=secured_broker.passwords["hp-a"])

    async def scenario() -> list[tuple[str, int]]:
        keys: list[tuple[str, int]] = []
        async with _core(secured_broker.port, secured_broker.passwords["forewarn-core"]) as core:
            await core.subscribe(f"forewarn/v1/{tenant}/+/telemetry", qos=1)
            for boot in ("boot1", "boot2"):
                queue = DiskQueue(tmp_path / "q.sqlite")
                if boot == "boot1":
                    queue.ack = lambda record_id: True  # type: ignore[method-assign]  # dies
                agent = EdgeAgent(tenant, Batcher("hp-a", boot, "heat_pump", ("a",),
                                                  max_samples=2), queue=queue)
                async with Uplink(agent, broker) as uplink:
                    if boot == "boot1":
                        agent.add_samples(np.arange(2.0), np.ones((2, 1)))
                        uplink.notify()
                    async with asyncio.timeout(10):
                        async for message in core.messages:
                            assert isinstance(message.payload, bytes)
                            batch = TelemetryBatch.model_validate_json(message.payload)
                            keys.append((batch.boot_id, batch.seq))
                            break
                    if boot == "boot2":
                        assert await uplink.wait_drained(5)
                queue.close()
        return keys

    assert asyncio.run(scenario()) == [("boot1", 0), ("boot1", 0)]
