"""MQTT 5 devices through mosquitto, bridged over MQTT 3.1.1 into nats-server's stream.

This is the bridge configuration docs/scaling.md documents, run for real.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.nats import NatsConfig, ensure_stream
from core.nats.stream import topic_of_subject
from edge.schema import encode_payload
from tests.servers.mosquitto import Mosquitto, mosquitto_binary
from tests.servers.nats import NatsServer, mosquitto_bridge_config

pytestmark = pytest.mark.integration


def test_mqtt5_device_reaches_the_stream_through_the_bridge(
        nats_server: NatsServer, tmp_path: Path, unique_tenant: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto; make test installs it)")
    cfg = NatsConfig(url=nats_server.url, stream=f"B_{unique_tenant}", partitions=4,
                     ingress_subject=f"forewarn.v1.{unique_tenant}.*.telemetry",
                     partition_prefix=f"b.{unique_tenant}", max_bytes=64 * 1024**2)
    body = (b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],'
            b'"t":[1.0],"values":[[2.0]]}')
    compressed, content_type = encode_payload(body * 1, compress_above_bytes=10)

    async def make_stream() -> None:
        nc = await nats.connect(cfg.url)
        try:
            await ensure_stream(nc.jetstream(), cfg)
        finally:
            await nc.close()

    async def stored() -> list[tuple[str, bytes]]:
        nc = await nats.connect(cfg.url)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + 15
            while (await js.stream_info(cfg.stream)).state.messages < 2:
                assert time.monotonic() < deadline, "bridged messages did not arrive"
                await asyncio.sleep(0.1)
            out = []
            for seq in (1, 2):
                msg = await js.get_msg(cfg.stream, seq)
                out.append((topic_of_subject(msg.subject or "", cfg), msg.data or b""))
            return out
        finally:
            await nc.close()

    asyncio.run(make_stream())
    with Mosquitto(tmp_path / "mosquitto", extra_config=mosquitto_bridge_config(
            nats_server, unique_tenant, name=unique_tenant)) as broker:
        device = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             client_id="hp-1", protocol=mqtt.MQTTv5)
        device.connect(broker.host, broker.port)
        device.loop_start()
        try:
            topic = f"forewarn/v1/{unique_tenant}/hp-1/telemetry"
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = content_type
            device.publish(topic, body, qos=1).wait_for_publish(10)
            device.publish(topic, compressed, qos=1, properties=props).wait_for_publish(10)
            messages = asyncio.run(stored())
        finally:
            device.loop_stop()
            device.disconnect()
    assert messages == [(topic, body), (topic, compressed)]  # properties gone, bytes intact
