"""Telemetry from the MQTT broker, as an async iterator of (topic, payload), with aiomqtt.

Persistent session (clean start off, session expiry) so QoS 1 messages published while core is
away wait at the broker. Reconnects with full-jitter exponential backoff.

A QoS 1 message is acknowledged to the broker only when the consumer asks for the next one,
that is once it has finished with this one (stored it and handed it to the rules): a crash
before that leaves the message unacknowledged in the persistent session, and the broker
delivers it again at the next connection. aiomqtt (2.5) has no manual acknowledgement of its
own yet (empicano/aiomqtt#345), so the ingestor switches paho's on and acknowledges through it.
:meth:`Ingestor.groups` hands on what waits in groups, each acknowledged when the consumer asks
for the next group.

Usage::

    async with Ingestor(MqttConfig(port=1883)) as ingestor:
        async for topic, payload in ingestor.messages():
            ...
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import struct
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.enums import MessageType, MQTTErrorCode, MQTTProtocolVersion

from core.config import MqttConfig
from core.session import BrokerRetry, persistent_client

__all__ = ["GROUP_MAX_MESSAGES", "Delivery", "Ingestor"]

_log = logging.getLogger(__name__)

#: finished messages acknowledged together, by protocol: an MQTT 5 session lets the broker
#: send up to the client's receive maximum (65,535) unacknowledged; a 3.1.1 one up to
#: mosquitto's max_inflight_messages (20 by default), so it acknowledges well below that and
#: the broker keeps sending while core works
_ACK_EVERY = {"5": 64, "3.1.1": 8}
#: the longest a finished message waits for its acknowledgement
_ACK_DELAY_S = 0.01
#: the most messages :meth:`Ingestor.groups` hands on at once: enough for a device of a large
#: fleet to have several readings in a group under a backlog (the detectors' cost per call
#: is then shared by more readings: 16,384 instead of 4,096 took a 300-device fleet's one-reading
#: messages from ~8 to ~5 CPU µs each), and bounded (a group is only what already waits in
#: memory, ~100 ms of work, well within an MQTT 5 session's 65,535 unacknowledged)
GROUP_MAX_MESSAGES = 16_384
#: the most packets read per wake-up of the socket (bounded: the loop's other work goes on)
_READ_BURST = 1024


class _BurstClient(aiomqtt.Client):
    """aiomqtt's client, reading every packet that waits in the socket per wake-up.

    aiomqtt 2.5 reads one packet (paho's ``loop_read``) each time the event loop finds the
    socket readable: one loop iteration per message, so however long the consumer works, a
    group (:meth:`Ingestor.groups`) holds the few messages read between its turns. Reading
    until the socket would block (up to ``_READ_BURST``) lets a backlog come in groups the
    pipeline can coalesce, and saves the loop's wake-ups.
    """

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)

        def read_burst() -> None:
            try:  # paho's loop_read, for many packets; errors end the connection as there
                for _ in range(_READ_BURST):
                    if client._sock is None:
                        return
                    rc = client._packet_read()
                    if rc > 0:
                        client._loop_rc_handle(rc)
                        return
                    if rc == MQTTErrorCode.MQTT_ERR_AGAIN and not (
                            hasattr(client._sock, "pending") and client._sock.pending() > 0):
                        return
            except Exception as exc:  # a broken connection: aiomqtt's reader does the same
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        # replaces the reader aiomqtt registers just before (same thread-safe queue)
        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), read_burst)


def _payload_bytes(payload: object) -> bytes:
    """aiomqtt's payload as bytes (it decodes nothing for core's subscriptions: bytes)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return bytes(payload) if isinstance(payload, bytearray) else b""


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

    def _client(self, loop: asyncio.AbstractEventLoop) -> tuple[aiomqtt.Client, _Inbox]:
        """A client with paho's manual acknowledgement on and its messages going to an
        :class:`_Inbox`, both from the start (before CONNECT).

        A resumed session's messages (those unacknowledged by the last connection, and those
        queued while core was away) come right behind the CONNACK, before ``async with`` gives
        the client back: switched on only then, paho would already have acknowledged them on
        receipt (and they would have gone to aiomqtt's queue), and a second connection lost
        without finishing them would lose them.
        """
        client = self._new_client()
        client._client.manual_ack_set(True)  # aiomqtt 2.5 has no manual ack of its own
        return client, _Inbox(client._client, loop)

    def _new_client(self) -> aiomqtt.Client:
        return persistent_client(self.config, self.config.client_id, client_class=_BurstClient,
                                 receive_maximum=self.receive_maximum)

    async def messages(self) -> AsyncGenerator[tuple[str, bytes], None]:
        """Yield (topic, payload) forever; reconnect on broker loss. A message is acknowledged
        when the next one is asked for."""
        async for delivery in self.deliveries():
            yield delivery.topic, delivery.payload
            delivery.ack()  # the consumer is back for the next message: done with this one

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield each message with its own acknowledgement, to call once it is finished (in
        any order); reconnect on broker loss. Messages of a lost connection are not
        acknowledged: the broker sends them again."""
        async with contextlib.aclosing(self._received(GROUP_MAX_MESSAGES)) as received:
            async for taken, finish in received:  # closed with this generator: no reconnects
                for message in taken:
                    yield Delivery(message[0], message[1], functools.partial(finish, message))

    async def groups(self, max_messages: int = GROUP_MAX_MESSAGES
                     ) -> AsyncGenerator[list[tuple[str, bytes]], None]:
        """Yield lists of (topic, payload) forever: the next message and those already
        waiting behind it, up to ``max_messages``; reconnect on broker loss.

        A group's messages are acknowledged when the consumer asks for the next group: it
        has finished with all of them. Nothing waits to fill a group: under a light load a
        group is one message (no added latency); under a heavy one it is what arrived while
        the consumer worked on the last, which the pipeline coalesces
        (:meth:`core.pipeline.CorePipeline.process_group`).
        """
        async with contextlib.aclosing(self._received(max_messages)) as received:
            async for taken, finish in received:  # closed with this generator: no reconnects
                yield [(message[0], message[1]) for message in taken]
                finish.all(taken)  # the consumer is back for the next group: done with them

    async def _received(self, max_messages: int) -> AsyncGenerator[
            tuple[list[_Received], _Acknowledger], None]:
        """The next message and those waiting behind it (up to ``max_messages``), with the
        function that acknowledges one once finished; reconnects on broker loss."""
        retry = BrokerRetry(self.config, self._rng)
        loop = asyncio.get_running_loop()
        ack_every = _ACK_EVERY[self.config.protocol]
        while True:
            try:
                client, inbox = self._client(loop)
                async with client:
                    paho = client._client  # manual ack and inbox since before CONNECT
                    finish = _Acknowledger(paho, loop, ack_every, self)
                    await client.subscribe(self.config.subscription, qos=1)
                    for extra in self.extra_subscriptions:
                        await client.subscribe(extra, qos=1)
                    self.connected.set()
                    retry.connected()
                    while True:
                        await inbox.wait(client._disconnected)
                        yield inbox.take(max_messages), finish
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.reconnects += 1
                await asyncio.sleep(retry.log(_log, exc))


#: a message received: topic, payload, packet id, QoS
_Received = tuple[str, bytes, int, int]
_PUBACK = struct.Struct("!BBH")


class _Inbox:
    """The messages paho reads, in order, without aiomqtt's per-message objects and queue.

    paho builds, per PUBLISH packet, its MQTT 5 properties object (~40 attributes), a message
    object with a lock, a debug log line, then aiomqtt wraps it in its own message and puts it
    on an asyncio queue: ~30 µs of CPU per message before core sees it. A plain QoS 1 PUBLISH
    (no properties, the message of every device) is decoded here instead, into a tuple on a
    deque; a consumer waiting is woken once per burst, not per message. Any other PUBLISH
    (QoS 0 or 2, with properties) goes paho's own way and reaches the same deque through
    ``on_message``, so the order is the broker's.
    """

    def __init__(self, paho: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.messages: collections.deque[_Received] = collections.deque()
        self._loop = loop
        self._woken: asyncio.Future[None] | None = None
        self._paho_publish = paho._handle_publish
        self._paho = paho
        self._v5 = paho._protocol == MQTTProtocolVersion.MQTTv5
        paho._handle_publish = self._handle_publish  # paho's reader calls it per PUBLISH
        paho.on_message = self._on_message

    def _handle_publish(self) -> MQTTErrorCode:
        packet = self._paho._in_packet
        body = packet["packet"]
        if (packet["command"] & 0x06) != 0x02 or len(body) < 2:  # not QoS 1: paho's way
            return self._paho_publish()  # type: ignore[no-any-return]
        at = 2 + ((body[0] << 8) | body[1])
        if len(body) < at + 2 + self._v5 or at == 2 or (self._v5 and body[at + 2] != 0):
            return self._paho_publish()  # type: ignore[no-any-return]  # properties, alias
        try:
            topic = body[2:at].decode("utf-8")
        except UnicodeDecodeError:
            return self._paho_publish()  # type: ignore[no-any-return]
        mid = (body[at] << 8) | body[at + 1]
        self.messages.append((topic, bytes(memoryview(body)[at + 2 + self._v5:]), mid, 1))
        self._wake()
        return MQTTErrorCode.MQTT_ERR_SUCCESS  # manual acknowledgement: none sent here

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic = bytes(message._topic).decode("utf-8", "replace")  # bad_topic downstream
        self.messages.append((topic, _payload_bytes(message.payload), message.mid, message.qos))
        self._wake()

    def _wake(self) -> None:
        woken = self._woken
        if woken is not None and not woken.done():
            woken.set_result(None)

    async def wait(self, disconnected: asyncio.Future[None]) -> None:
        """Until a message waits; aiomqtt's MqttError when the connection is lost."""
        if not self.messages and not disconnected.done():
            self._woken = self._loop.create_future()
            try:
                await asyncio.wait((self._woken, disconnected),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._woken = None
        if disconnected.done() and not self.messages:
            raise aiomqtt.MqttError("Disconnected during message iteration") from (
                disconnected.exception() if not disconnected.cancelled() else None)

    def take(self, max_messages: int) -> list[_Received]:
        """The messages waiting, oldest first, up to ``max_messages``."""
        messages = self.messages
        if len(messages) <= max_messages:
            taken = list(messages)
            messages.clear()
            return taken
        return [messages.popleft() for _ in range(max_messages)]


class _Acknowledger:
    """Acknowledges finished messages: QoS 1 ones ``ack_every`` at a time, or
    ``_ACK_DELAY_S`` after the first, in one write of their PUBACKs (paho queues and signals
    a write per acknowledgement: one each doubled the CPU per message)."""

    def __init__(self, paho: Any, loop: asyncio.AbstractEventLoop, ack_every: int,
                 ingestor: Ingestor) -> None:
        self._paho, self._loop, self._every, self._ingestor = paho, loop, ack_every, ingestor
        self._finished: list[int] = []

    def __call__(self, message: _Received) -> None:
        if message[3] != 1:  # QoS 0: nothing; QoS 2: paho's PUBCOMP
            self._paho.ack(message[2], message[3])
            return
        self._finished.append(message[2])
        if len(self._finished) >= self._every:
            self.flush()
        elif len(self._finished) == 1:
            self._loop.call_later(_ACK_DELAY_S, self.flush)

    def all(self, messages: list[_Received]) -> None:
        """Every message of a group finished (the QoS 1 ones acknowledged in one write)."""
        pending = len(self._finished)
        for message in messages:
            if message[3] == 1:
                self._finished.append(message[2])
            else:
                self._paho.ack(message[2], message[3])
        if len(self._finished) >= self._every:
            self.flush()
        elif self._finished and not pending:
            self._loop.call_later(_ACK_DELAY_S, self.flush)

    def flush(self) -> None:
        finished = self._finished
        if not finished:
            return
        if self._paho._sock is not None:  # a lost connection's messages come again
            self._paho._packet_queue(MessageType.PUBACK, b"".join(
                _PUBACK.pack(MessageType.PUBACK, 2, mid) for mid in finished), 0, 1)
        self._ingestor.acknowledged += len(finished)
        finished.clear()
