"""Device identity at the broker: own credentials, own topics only (deploy/mosquitto/acl)."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from edge.schema import status_topic, telemetry_topic

pytestmark = pytest.mark.integration


def _client(port: int, username: str | None, password: str | None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username=username, password=password,
                          identifier=f"{username}-{uuid.uuid4().hex[:6]}",
                          protocol=aiomqtt.ProtocolVersion.V5, timeout=5.0)


@pytest.mark.parametrize(
    ("username", "password"),
    [("hp-a", "wrong"), ("hp-z", "pw-hp-z"), (None, None)],
    ids=["wrong-password", "unknown-device", "anonymous"],
)
def test_bad_credentials_cannot_connect(secured_broker, username, password) -> None:
    async def attempt() -> None:
        async with _client(secured_broker.port, username, password):
            pass

    with pytest.raises(aiomqtt.MqttError):
        asyncio.run(attempt())


def test_right_credentials_connect(secured_broker) -> None:
    async def attempt() -> None:
        async with _client(secured_broker.port, "hp-a", secured_broker.passwords["hp-a"]):
            pass

    asyncio.run(attempt())


@pytest.mark.parametrize("kind", ["telemetry", "status"])
def test_device_cannot_publish_as_another_device(secured_broker, kind) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    spoofed = (telemetry_topic if kind == "telemetry" else status_topic)(tenant, "hp-b")
    own = telemetry_topic(tenant, "hp-a")

    async def scenario() -> list[str]:
        seen: list[str] = []
        async with _client(secured_broker.port, "forewarn-core",
                           secured_broker.passwords["forewarn-core"]) as core:
            await core.subscribe(f"forewarn/v1/{tenant}/#", qos=1)
            async with _client(secured_broker.port, "hp-a",
                               secured_broker.passwords["hp-a"]) as device:
                await device.publish(spoofed, b'{"spoofed": true}', qos=1)
                # the broker keeps one client's messages in order: once the marker arrives,
                # the spoofed message would have arrived before it
                await device.publish(own, b'{"marker": true}', qos=1)
            async with asyncio.timeout(10):
                async for message in core.messages:
                    seen.append(str(message.topic))
                    if str(message.topic) == own:
                        break
        return seen

    assert asyncio.run(scenario()) == [own]


def test_device_cannot_read_another_devices_config(secured_broker) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    other = f"forewarn/v1/{tenant}/hp-b/config/desired"
    own = f"forewarn/v1/{tenant}/hp-a/config/desired"

    async def scenario() -> list[str]:
        async with _client(secured_broker.port, "forewarn-core",
                           secured_broker.passwords["forewarn-core"]) as core:
            await core.publish(other, b'{"revision": 1}', qos=1, retain=True)
            await core.publish(own, b'{"revision": 1}', qos=1, retain=True)
        seen: list[str] = []
        async with _client(secured_broker.port, "hp-a",
                           secured_broker.passwords["hp-a"]) as device:
            await device.subscribe(other, qos=1)
            await device.subscribe(own, qos=1)
            async with asyncio.timeout(10):
                async for message in device.messages:
                    seen.append(str(message.topic))
                    if str(message.topic) == own:
                        break
        return seen

    assert asyncio.run(scenario()) == [own]
