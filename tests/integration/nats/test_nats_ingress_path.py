"""The production ingress of the NATS engine, end to end (issue 23): MQTT 5 devices → Mosquitto
with per-device passwords and an ACL of literal tenants (written by ``forewarn devices add
--tenant``) → the ingest bridge (its own account, a persistent session) → JetStream.

The bridge goes away while the devices keep publishing: Mosquitto queues for its session, the
bridge that comes back with the same client id drains it, and every batch is in the stream,
none missing from any device's sequence. A device publishing as another device, or into
another tenant, is refused by Mosquitto (MQTT 5: PUBACK "not authorized") and never reaches
the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import nats
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.config import MqttConfig
from core.nats import NatsConfig, ensure_stream
from core.nats.bridge import IngestBridge
from forewarn.cli import main
from tests.integration.nats.fleet import SyntheticFleet
from tests.servers.mosquitto import Mosquitto, mosquitto_binary
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

DEVICES = ("d0000", "d0001")
BEFORE, DURING, AFTER = 5, 40, 5


def _publish_v5(port: int, device: str, password: str,
                batches: list[tuple[str, bytes]]) -> list[int]:
    """Publish as ``device`` over MQTT 5, QoS 1; the PUBACK reason code of each."""
    codes: dict[int, int] = {}
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"{device}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    client.username_pw_set(device, password)

    def on_publish(_c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        codes[mid] = int(getattr(reason, "value", 0))

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        mids = [client.publish(topic, payload, qos=1).mid for topic, payload in batches]
        deadline = time.monotonic() + 30
        while len(codes) < len(mids):
            assert time.monotonic() < deadline, "PUBACKs missing"
            time.sleep(0.01)
    finally:
        client.loop_stop()
        client.disconnect()
    return [codes[m] for m in mids]


def test_mqtt5_devices_with_acls_through_mosquitto_and_a_bridge_outage(
        nats_server: NatsServer, tmp_path: Path, unique_tenant: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    tenant, other = unique_tenant, f"x{unique_tenant}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    for user in (*DEVICES, "forewarn-core"):
        secret = tmp_path / f"{user}.secret"
        secret.write_text(f"pw-{user}\n")
        tenant_args = ["--tenant", tenant, "--acl-file", str(acl)] if user != "forewarn-core" \
            else []
        assert main(["devices", "add", user, "--mosquitto-passwd", str(passwd),
                     "--password-file", str(secret), *tenant_args]) == 0
    cfg = NatsConfig(url=nats_server.url, stream=f"IP_{tenant}", partitions=2,
                     ingress_subject=f"forewarn.v1.{tenant}.*.telemetry",
                     partition_prefix=f"ip.{tenant}", max_bytes=64 * 1024**2,
                     bridge_client_id=f"bridge-{tenant}",
                     bridge_subscription=f"forewarn/v1/{tenant}/+/telemetry")
    fleet = SyntheticFleet(tenant, devices=len(DEVICES), batch_samples=5)

    def rounds(n: int) -> dict[str, list[tuple[str, bytes]]]:
        out: dict[str, list[tuple[str, bytes]]] = {d: [] for d in DEVICES}
        for topic, payload, _ in fleet.batches(n):
            out[topic.split("/")[3]].append((topic, payload))
        return out

    def publish(port: int, n: int) -> list[int]:
        codes: list[int] = []
        for device, batches in rounds(n).items():
            codes += _publish_v5(port, device, f"pw-{device}", batches)
        return codes

    with Mosquitto(tmp_path / "mosquitto", allow_anonymous=False,
                   extra_config=f"user root\npassword_file {passwd}\nacl_file {acl}\n"
                   "max_queued_messages 0\n") as broker:
        mqtt_cfg = MqttConfig(host=broker.host, port=broker.port, username="forewarn-core",
                              password="pw-forewarn-core")

        async def scenario() -> tuple[list[int], list[int], int]:
            nc = await nats.connect(cfg.url)
            js = nc.jetstream()
            await ensure_stream(js, cfg)
            try:
                async with IngestBridge(cfg, mqtt_cfg) as bridge:
                    running = asyncio.create_task(bridge.run())
                    await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
                    accepted = await asyncio.to_thread(publish, broker.port, BEFORE)
                    # d0000 as d0001, and into another tenant: both refused by the ACL
                    refused = await asyncio.to_thread(_publish_v5, broker.port, "d0000",
                                                      "pw-d0000", [
                        (f"forewarn/v1/{tenant}/d0001/telemetry", b'{"forged": 1}'),
                        (f"forewarn/v1/{other}/d0000/telemetry", b'{"forged": 2}')])
                    deadline = time.monotonic() + 20
                    while bridge.ledger.totals().forwarded < BEFORE * len(DEVICES):
                        assert time.monotonic() < deadline, bridge.ledger.totals()
                        await asyncio.sleep(0.05)
                    running.cancel()  # the bridge goes away; its session stays at Mosquitto
                    await asyncio.gather(running, return_exceptions=True)
                accepted += await asyncio.to_thread(publish, broker.port, DURING)
                async with IngestBridge(cfg, mqtt_cfg) as bridge:  # back, same client id
                    running = asyncio.create_task(bridge.run())
                    await asyncio.wait_for(bridge.ingestor.connected.wait(), 10)
                    accepted += await asyncio.to_thread(publish, broker.port, AFTER)
                    deadline = time.monotonic() + 30
                    while bridge.ledger.totals().forwarded < (DURING + AFTER) * len(DEVICES):
                        assert time.monotonic() < deadline, bridge.ledger.totals()
                        await asyncio.sleep(0.05)
                    gaps = bridge.ledger.totals().gaps
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
                last = (await js.stream_info(cfg.stream)).state.last_seq
                stored = [json.loads((await js.get_msg(cfg.stream, seq)).data or b"{}")
                          for seq in range(1, last + 1)]
            finally:
                await nc.close()
            got = [(body.get("device_id"), body.get("seq")) for body in stored]
            assert sorted(got) == sorted(set(got)), "a batch stored twice"
            assert set(got) == {(d, s) for d in DEVICES
                                for s in range(BEFORE + DURING + AFTER)}, got
            return accepted, refused, gaps

        accepted, refused, gaps = asyncio.run(scenario())
    assert set(accepted) == {0}  # success, every one
    assert refused == [0x87, 0x87]  # MQTT 5 "not authorized": the device learns it
    assert gaps == 0
