"""The ingest bridge through outages: nothing acknowledged is lost, and what the broker drops
before the bridge is counted per device.

The bridge (:class:`core.nats.bridge.IngestBridge`) drains 300 batches that devices publish to
Mosquitto; nats-server is stopped while they flow and started again a second later. Every
batch is in the stream afterwards (those whose acknowledgement was lost may be there twice,
and the few in flight at the stop may land out of order, as an edge agent's own window of
publishes can), and each was acknowledged to Mosquitto once (the ledger counts deliveries).

Second, the bridge is away while devices publish more than Mosquitto queues for its session
(``max_queued_messages``): Mosquitto drops the rest. The bridge counts each device's missing
batches from the gaps in its sequence, as soon as a later batch of that device arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
import pytest

from core.config import MqttConfig
from core.nats import NatsConfig, ensure_stream
from core.nats.bridge import IngestBridge
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, mosquitto_binary
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

DEVICES, ROUNDS = 3, 100


async def _stored(url: str, stream: str) -> list[tuple[str, int]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(stream)).state.last_seq
        out = []
        for seq in range(1, last + 1):
            body = json.loads((await js.get_msg(stream, seq)).data or b"{}")
            out.append((body["device_id"], body["seq"]))
        return out
    finally:
        await nc.close()


def test_a_nats_outage_mid_stream_loses_and_reorders_nothing(tmp_path: Path,
                                                            unique_tenant: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    with NatsServer(tmp_path / "nats") as server, \
            Mosquitto(tmp_path / "mosquitto", extra_config="max_queued_messages 0\n") as broker:
        cfg = NatsConfig(url=server.url, stream=f"BO_{unique_tenant}", partitions=2,
                         ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                         partition_prefix=f"bo.{unique_tenant}", max_bytes=64 * 1024**2,
                         bridge_client_id=f"bridge-{unique_tenant}", bridge_window=16,
                         bridge_subscription=f"forewarn/v1/{unique_tenant}/+/telemetry")
        mqtt = MqttConfig(host=broker.host, port=broker.port)

        async def scenario() -> int:
            nc = await nats.connect(server.url)
            await ensure_stream(nc.jetstream(), cfg)
            await nc.close()
            async with IngestBridge(cfg, mqtt) as bridge:
                running = asyncio.create_task(bridge.run())
                await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
                fleet = SyntheticFleet(unique_tenant, devices=DEVICES, batch_samples=20)
                publisher = asyncio.create_task(asyncio.to_thread(
                    publish_mqtt, broker.host, broker.port, fleet.batches(ROUNDS)))
                deadline = time.monotonic() + 30
                while bridge.ledger.totals().forwarded < 30:
                    assert time.monotonic() < deadline, "the bridge forwarded nothing"
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(1.0)
                assert bridge.ledger.totals().forwarded < DEVICES * ROUNDS  # held meanwhile
                await asyncio.to_thread(server.start)
                await publisher
                deadline = time.monotonic() + 60
                while bridge.ledger.totals().forwarded < DEVICES * ROUNDS:
                    assert time.monotonic() < deadline, \
                        f"forwarded {bridge.ledger.totals().forwarded}"
                    await asyncio.sleep(0.05)
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                return bridge.ledger.totals().forwarded

        forwarded = asyncio.run(scenario())
        stored = asyncio.run(_stored(server.url, cfg.stream))
    assert forwarded == DEVICES * ROUNDS
    assert set(stored) == {(f"d{i:04d}", seq) for i in range(DEVICES) for seq in range(ROUNDS)}
    assert len(stored) - len(set(stored)) <= cfg.bridge_window  # repeats: at most a window


def test_batches_the_broker_dropped_are_counted_per_device(tmp_path: Path,
                                                          unique_tenant: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    queued = 10
    with NatsServer(tmp_path / "nats") as server, \
            Mosquitto(tmp_path / "mosquitto",
                      extra_config=f"max_queued_messages {queued}\n") as broker:
        cfg = NatsConfig(url=server.url, stream=f"BG_{unique_tenant}", partitions=2,
                         ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                         partition_prefix=f"bg.{unique_tenant}", max_bytes=64 * 1024**2,
                         bridge_client_id=f"bridge-{unique_tenant}",
                         bridge_subscription=f"forewarn/v1/{unique_tenant}/+/telemetry")
        mqtt = MqttConfig(host=broker.host, port=broker.port)
        fleet = SyntheticFleet(unique_tenant, devices=2, batch_samples=5)

        async def scenario() -> dict[str, tuple[int, int]]:
            nc = await nats.connect(server.url)
            await ensure_stream(nc.jetstream(), cfg)
            await nc.close()
            async with IngestBridge(cfg, mqtt) as bridge:  # its session, then away
                opening = asyncio.create_task(bridge.run())
                await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
                opening.cancel()
                await asyncio.gather(opening, return_exceptions=True)
            # 2 devices × 20 batches while the bridge is away: Mosquitto keeps 10
            await asyncio.to_thread(publish_mqtt, broker.host, broker.port, fleet.batches(20))
            async with IngestBridge(cfg, mqtt) as bridge:
                running = asyncio.create_task(bridge.run())
                await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
                # one more batch each, live: it shows what went missing before it
                await asyncio.to_thread(publish_mqtt, broker.host, broker.port,
                                        fleet.batches(1))
                deadline = time.monotonic() + 20
                while bridge.ledger.totals().forwarded < queued + 2:
                    assert time.monotonic() < deadline, bridge.ledger.totals()
                    await asyncio.sleep(0.05)
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                return {device: (counts.forwarded, counts.gaps)
                        for (_, device), counts in bridge.ledger.devices.items()}

        counts = asyncio.run(scenario())
    assert sum(forwarded for forwarded, _ in counts.values()) == queued + 2
    # every device's 21 batches are either forwarded or counted as missing, per device
    assert counts and all(forwarded + gaps == 21 and gaps > 0
                          for forwarded, gaps in counts.values()), counts
