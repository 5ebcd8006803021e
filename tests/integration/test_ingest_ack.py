"""Core acknowledges a QoS 1 message only when it is done with it, so a crash loses nothing.

The first consumer takes one message and stops before asking for the next (as a process
killed while storing it would); the broker must deliver that message again to the next
connection of core's persistent session. Acknowledging on receipt (aiomqtt's default) fails
this: the broker forgets the message as soon as the client has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.config import MqttConfig
from core.ingest import Ingestor
from tests.servers.mosquitto import Mosquitto

pytestmark = pytest.mark.integration


def _publish(broker: Mosquitto, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         protocol=mqtt.MQTTv311)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(10.0)
    finally:
        client.loop_stop()
        client.disconnect()


async def _take(ingestor: Ingestor, n: int, timeout_s: float = 20.0) -> list[bytes]:
    """The payloads of the first ``n`` messages; the generator is left without asking for more."""
    taken: list[bytes] = []
    messages = ingestor.messages()
    try:
        async with asyncio.timeout(timeout_s):
            async for _topic, payload in messages:
                taken.append(payload)
                if len(taken) == n:
                    break
    finally:
        await messages.aclose()
    return taken


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_message_not_finished_is_delivered_again(mosquitto: Mosquitto, unique_tenant: str,
                                                   protocol: str) -> None:
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=protocol,
                        client_id=f"core-{uuid.uuid4().hex[:8]}",
                        subscription=f"forewarn/v1/{unique_tenant}/+/telemetry")
    topic = f"forewarn/v1/{unique_tenant}/hp-1/telemetry"

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        first = Ingestor(config)
        consumer = asyncio.create_task(_take(first, 1))
        await asyncio.wait_for(first.connected.wait(), 10.0)
        await asyncio.to_thread(_publish, mosquitto, topic, [b"one", b"two", b"three"])
        before = await consumer  # "one" taken, never finished with
        after = await _take(Ingestor(config), 3)
        return before, after

    before, after = asyncio.run(scenario())
    assert before == [b"one"]
    assert after == [b"one", b"two", b"three"]


async def _first_group(ingestor: Ingestor, timeout_s: float = 20.0) -> list[bytes]:
    """The payloads of the first group; the generator is left without asking for the next."""
    groups = ingestor.groups()
    try:
        async with asyncio.timeout(timeout_s):
            group = await anext(groups)
    finally:
        await groups.aclose()
    return [payload for _topic, payload in group]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_group_not_finished_is_delivered_again(mosquitto: Mosquitto, unique_tenant: str,
                                                 protocol: str) -> None:
    """What ``forewarn core`` consumes (:meth:`Ingestor.groups`): a group is acknowledged only
    when the next one is asked for, so every message of an unfinished group comes again."""
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=protocol,
                        client_id=f"core-{uuid.uuid4().hex[:8]}",
                        subscription=f"forewarn/v1/{unique_tenant}/+/telemetry")
    topic = f"forewarn/v1/{unique_tenant}/hp-1/telemetry"
    payloads = [f"m{i}".encode() for i in range(6)]

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        first = Ingestor(config)
        consumer = asyncio.create_task(_first_group(first))
        await asyncio.wait_for(first.connected.wait(), 10.0)
        await asyncio.to_thread(_publish, mosquitto, topic, payloads)
        group = await consumer  # taken, never finished with
        after = await _take(Ingestor(config), len(payloads))
        return group, after

    group, after = asyncio.run(scenario())
    assert group and group == payloads[:len(group)]
    assert after == payloads


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_unfinished_by_two_sessions_in_a_row_reach_a_third(
        mosquitto: Mosquitto, unique_tenant: str, protocol: str) -> None:
    """A resumed session's messages come right behind the CONNACK: core must not acknowledge
    them on receipt there either. The second connection takes a group of the messages that
    waited for it (one left unfinished by the first, a backlog published while core was away)
    and is lost before finishing it; the third must get them all. With paho's manual
    acknowledgement switched on only once connected, the second connection acknowledged them
    all on arrival and the third got nothing."""
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol=protocol,
                        client_id=f"core-{uuid.uuid4().hex[:8]}",
                        subscription=f"forewarn/v1/{unique_tenant}/+/telemetry")
    topic = f"forewarn/v1/{unique_tenant}/hp-1/telemetry"
    backlog = [f"m{i}".encode() for i in range(6)]

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        first = Ingestor(config)
        consumer = asyncio.create_task(_take(first, 1))
        await asyncio.wait_for(first.connected.wait(), 10.0)
        await asyncio.to_thread(_publish, mosquitto, topic, [b"x"])
        before = await consumer  # "x" taken, never finished with
        await asyncio.to_thread(_publish, mosquitto, topic, backlog)  # while core is away
        group = await _first_group(Ingestor(config))  # taken, never finished with
        after = await _take(Ingestor(config), 1 + len(backlog))
        return before, group, after

    before, group, after = asyncio.run(scenario())
    assert before == [b"x"]
    assert group and group == [b"x", *backlog][:len(group)]
    assert after == [b"x", *backlog]


def test_every_kind_of_publish_comes_in_order_and_is_acknowledged(
        mosquitto: Mosquitto, unique_tenant: str) -> None:
    """Plain QoS 1 PUBLISH packets are decoded by the ingestor itself (core.ingest._Inbox);
    QoS 0 ones and ones with MQTT 5 properties go paho's way. All reach the consumer in the
    broker's order with their payloads, and once finished none comes again."""
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, protocol="5",
                        client_id=f"core-{uuid.uuid4().hex[:8]}",
                        subscription=f"acme/{unique_tenant}/+/state")
    kinds = [(0, False), (1, False), (1, True), (0, True), (1, False)] * 3
    sent = [(f"acme/{unique_tenant}/hp-{i % 4}/state", f"m{i}-é".encode() * (1 + i * 40))
            for i in range(len(kinds))]

    def publish() -> None:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                             protocol=mqtt.MQTTv5)
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        try:
            infos = []
            for (topic, payload), (qos, with_properties) in zip(sent, kinds, strict=True):
                properties = None
                if with_properties:
                    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    properties.ContentType = "application/json"
                    properties.UserProperty = ("site", "s1")
                infos.append(client.publish(topic, payload, qos=qos, properties=properties))
            for info in infos:
                info.wait_for_publish(10.0)
        finally:
            client.loop_stop()
            client.disconnect()

    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], int]:
        ingestor = Ingestor(config)
        received: list[tuple[str, bytes]] = []

        async def consume() -> None:
            async for group in ingestor.groups():  # asking for the next finishes the last
                received.extend(group)

        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(ingestor.connected.wait(), 10.0)
        await asyncio.to_thread(publish)
        async with asyncio.timeout(20.0):
            while ingestor.acknowledged < sum(qos for qos, _ in kinds):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the acknowledgements leave before the session closes
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        acknowledged = ingestor.acknowledged
        again: list[tuple[str, bytes]] = []
        groups = Ingestor(config).groups()
        try:
            async with asyncio.timeout(1.0):
                again.extend(await anext(groups))
        except TimeoutError:
            pass
        finally:
            await groups.aclose()
        return received, again, acknowledged

    received, again, acknowledged = asyncio.run(scenario())
    assert received == sent
    assert acknowledged == sum(qos for qos, _ in kinds)
    assert again == []
