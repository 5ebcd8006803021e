"""Telemetry from the MQTT broker, as an async iterator of (topic, payload), with aiomqtt.

Persistent session (clean start off, session expiry) so QoS 1 messages published while core is
away wait at the broker. Reconnects with full-jitter exponential backoff.

A QoS 1 message is acknowledged to the broker only when the consumer asks for the next one,
that is once it has finished with this one (stored it and handed it to the rules): a crash
before that leaves the message unacknowledged in the persistent session, and the broker
delivers it again at the next connection. aiomqtt (2.5) has no manual acknowledgement of its
own yet (empicano/aiomqtt#345), so the ingestor switches paho's on and acknowledges through it.

Usage::

    async with Ingestor(MqttConfig(port=1883)) as ingestor:
        async for topic, payload in ingestor.messages():
            ...
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.config import MqttConfig
from edge.backoff import full_jitter

__all__ = ["Delivery", "Ingestor"]

_log = logging.getLogger(__name__)

#: finished messages acknowledged together, by protocol: an MQTT 5 session lets the broker
#: send up to the client's receive maximum (65,535) unacknowledged; a 3.1.1 one up to
#: mosquitto's max_inflight_messages (20 by default), so it acknowledges well below that and
#: the broker keeps sending while core works
_ACK_EVERY = {"5": 64, "3.1.1": 8}
#: the longest a finished message waits for its acknowledgement
_ACK_DELAY_S = 0.01


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message from the broker and how to acknowledge it (once it is finished)."""

    topic: str
    payload: bytes
    ack: Callable[[], None]


class Ingestor:
    """Subscribes to telemetry and yields messages until cancelled."""

    def __init__(self, config: MqttConfig, rng: random.Random | None = None,
                 extra_subscriptions: Sequence[str] = (),
                 receive_maximum: int | None = None) -> None:
        self.config = config
        #: MQTT 5: messages the broker may send unacknowledged (None: paho's, 65,535); a
        #: consumer that stops asking for messages holds at most this many
        self.receive_maximum = receive_maximum
        #: filters subscribed beside ``config.subscription`` (the mapped fleets' topics)
        self.extra_subscriptions = tuple(extra_subscriptions)
        self._rng = rng or random.Random()
        self.connected = asyncio.Event()
        self.reconnects = 0
        #: QoS 1 messages acknowledged to the broker
        self.acknowledged = 0

    async def __aenter__(self) -> Ingestor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.connected.clear()

    def _client(self) -> aiomqtt.Client:
        if self.config.protocol == "3.1.1":
            return aiomqtt.Client(
                self.config.host,
                self.config.port,
                username=self.config.username,
                password=self.config.password,
                identifier=self.config.client_id,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=False,
            )
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        if self.receive_maximum is not None:
            props.ReceiveMaximum = self.receive_maximum
        return aiomqtt.Client(
            self.config.host,
            self.config.port,
            username=self.config.username,
            password=self.config.password,
            identifier=self.config.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
        )

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (topic, payload) forever; reconnect on broker loss. A message is acknowledged
        when the next one is asked for."""
        async for delivery in self.deliveries():
            yield delivery.topic, delivery.payload
            delivery.ack()  # the consumer is back for the next message: done with this one

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Yield each message with its own acknowledgement, to call once it is finished (in
        any order); reconnect on broker loss. Messages of a lost connection are not
        acknowledged: the broker sends them again."""
        attempt = 0
        loop = asyncio.get_running_loop()
        ack_every = _ACK_EVERY[self.config.protocol]
        while True:
            try:
                async with self._client() as client:
                    paho = client._client  # aiomqtt 2.5 has no manual ack of its own
                    paho.manual_ack_set(True)
                    finished: list[aiomqtt.Message] = []

                    def acknowledge(paho: Any = paho, finished: list[Any] = finished) -> None:
                        for done in finished:
                            paho.ack(done.mid, done.qos)
                        self.acknowledged += len(finished)
                        finished.clear()

                    def finish(message: aiomqtt.Message, finished: list[Any] = finished,
                               acknowledge: Callable[[], None] = acknowledge) -> None:
                        # Acknowledgements go out _ACK_EVERY at a time, or _ACK_DELAY_S after
                        # the first: one write for many (one each doubled the CPU per message)
                        finished.append(message)
                        if len(finished) >= ack_every:
                            acknowledge()
                        elif len(finished) == 1:
                            loop.call_later(_ACK_DELAY_S, acknowledge)

                    await client.subscribe(self.config.subscription, qos=1)
                    for extra in self.extra_subscriptions:
                        await client.subscribe(extra, qos=1)
                    self.connected.set()
                    attempt = 0
                    async for message in client.messages:
                        payload = message.payload
                        if isinstance(payload, str):
                            payload = payload.encode()
                        elif not isinstance(payload, bytes | bytearray):
                            payload = b""
                        yield Delivery(message.topic.value, bytes(payload),
                                       functools.partial(finish, message))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                attempt += 1
                self.reconnects += 1
                delay = full_jitter(attempt, 0.5, self.config.reconnect_max_s, self._rng)
                _log.warning("broker connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
