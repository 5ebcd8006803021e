"""The devices' lifecycle messages: status (birth, goodbye, last will, periodic), agent events
and reported configs, from the broker to a sink (the rules' device book, wired by the shell).

Telemetry has its own path (:mod:`core.ingest`, the pipeline); these messages are few (one
status every ``status_interval_s`` per device, events and config reports now and then), so
they come on a connection of their own and never wait behind a batch being scored.

:func:`decode_lifecycle` turns one message into a :data:`~core.events.LifecycleEvent`; a
message that does not validate, or whose payload names another device than its topic, is a
dead letter (counted, logged, kept), never an exception:

>>> event = decode_lifecycle("forewarn/v1/acme/hp-1/status",
...     b'{"device_id": "hp-1", "boot_id": "b1", "state": "offline", "reason": "shutdown",'
...     b' "t": 1767225600.0}', None, arrival=1767225601.0)
>>> event.state, event.reason, event.ts
('offline', 'shutdown', 1767225600.0)
>>> letters = DeadLetters()
>>> decode_lifecycle("forewarn/v1/acme/hp-1/event", b'{"device_id": "hp-2"}', None,
...                  arrival=0.0, dead_letters=letters) is None, dict(letters.counts)
(True, {'invalid_event': 1})

Usage::

    async with LifecycleListener(mqtt_config, sink=rules.handle_lifecycle_in_thread) as listener:
        await listener.run()
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from types import TracebackType

import aiomqtt
from pydantic import ValidationError

from core.config import MqttConfig
from core.dead_letter import DeadLetters
from core.events import (
    AgentEvent,
    ConfigReported,
    DeviceStatus,
    LifecycleEvent,
    LifecycleSink,
)
from core.mapping.sparkplug_status import SparkplugStatus
from core.session import BrokerRetry, persistent_client
from edge.schema import (
    ConfigReport,
    EventMessage,
    PayloadError,
    StatusMessage,
    TopicError,
    decode_payload,
    parse_topic,
)

__all__ = ["LIFECYCLE_KINDS", "LifecycleListener", "decode_lifecycle", "lifecycle_subscriptions"]

_log = logging.getLogger(__name__)

#: the topic kinds this module reads
LIFECYCLE_KINDS = ("status", "event", "config/reported")


def lifecycle_subscriptions(tenant: str = "+") -> list[str]:
    """Subscription filters for every device's lifecycle messages (of one tenant or all)."""
    return [f"forewarn/v1/{tenant}/+/{kind}" for kind in LIFECYCLE_KINDS]


def decode_lifecycle(topic: str, payload: bytes, properties: object | None, *, arrival: float,
                     dead_letters: DeadLetters | None = None) -> LifecycleEvent | None:
    """The lifecycle event in one message, or None (an empty retained message, a dead letter)."""
    if not payload:
        return None  # a retained message being cleared
    try:
        parts = parse_topic(topic)
    except TopicError as exc:
        _dead(dead_letters, "bad_topic", topic, str(exc), payload)
        return None
    if parts.kind not in LIFECYCLE_KINDS:
        return None
    reason = "invalid_" + parts.kind.replace("config/reported", "config_report")
    try:
        body = decode_payload(payload, properties)
        message: StatusMessage | EventMessage | ConfigReport
        if parts.kind == "status":
            message = StatusMessage.model_validate_json(body)
        elif parts.kind == "event":
            message = EventMessage.model_validate_json(body)
        else:
            message = ConfigReport.model_validate_json(body)
    except (PayloadError, ValidationError, ValueError, RecursionError) as exc:
        _dead(dead_letters, reason, topic, str(exc).splitlines()[0], payload)
        return None
    if message.device_id != parts.device_id:
        _dead(dead_letters, "device_mismatch", topic,
              f"payload names {message.device_id!r}", payload)
        return None
    tenant, device_id = parts.tenant, parts.device_id
    if isinstance(message, StatusMessage):
        # a last will was written when the agent connected: it happened when it arrives
        stamped = message.t is not None and message.reason != "connection_lost"
        return DeviceStatus(
            tenant, device_id, message.state,
            message.t if stamped and message.t is not None else arrival,
            reason=message.reason, boot_id=message.boot_id, firmware=message.firmware,
            queue_depth=message.queue_depth, dropped_samples=message.dropped_samples)
    if isinstance(message, EventMessage):
        return AgentEvent(tenant, device_id, message.kind, message.severity, message.t,
                          boot_id=message.boot_id, seq=message.seq,
                          detail=tuple(sorted(message.detail.items())))
    return ConfigReported(tenant, device_id, message.status, message.revision,
                          tuple(sorted(message.applied.items())), reason=message.reason,
                          ts=arrival)


def _dead(dead_letters: DeadLetters | None, reason: str, topic: str, detail: str,
          payload: bytes) -> None:
    if dead_letters is not None:
        dead_letters.record(reason, topic, detail, payload)
    else:
        _log.warning("dropped %s message on %s: %s", reason, topic, detail)


class LifecycleListener:
    """Subscribes to every device's lifecycle topics and hands each message to ``sink``.

    A persistent session (``client_id``, clean start off) so a status sent while core was away
    still arrives; retained messages give the last status and reported config of every device
    at each start. Reconnects with full-jitter backoff.
    """

    def __init__(self, config: MqttConfig, sink: LifecycleSink, *,
                 dead_letters: DeadLetters | None = None,
                 clock: Callable[[], float] = time.time,
                 sparkplug: SparkplugStatus | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        #: births and deaths of mapped Sparkplug B devices (``[[ingest.mapping]]``)
        self.sparkplug = sparkplug
        self.sink = sink
        self.dead_letters = dead_letters or DeadLetters()
        self.connected = asyncio.Event()
        self.received = 0
        self._clock = clock
        self._rng = rng or random.Random()

    async def __aenter__(self) -> LifecycleListener:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.connected.clear()

    def _client(self) -> aiomqtt.Client:
        return persistent_client(self.config, f"{self.config.client_id}-lifecycle",
                                 timeout=15.0)

    async def run(self) -> None:
        """Receive and hand on until cancelled."""
        retry = BrokerRetry(self.config, self._rng)
        while True:
            try:
                async with self._client() as client:
                    extra = self.sparkplug.subscriptions if self.sparkplug else []
                    for topic in [*lifecycle_subscriptions(), *extra]:
                        await client.subscribe(topic, qos=1)
                    if extra:
                        _log.info("lifecycle: subscribed to %s", ", ".join(extra))
                    self.connected.set()
                    retry.connected()
                    async for message in client.messages:
                        payload = message.payload
                        if not isinstance(payload, bytes | bytearray):
                            continue
                        self.received += 1
                        if self.sparkplug is not None and message.topic.value.startswith(
                                "spBv1.0/"):
                            for status in self.sparkplug.decode(
                                    message.topic.value, bytes(payload), self._clock()):
                                await self.sink(status)
                            continue
                        event = decode_lifecycle(
                            message.topic.value, bytes(payload), message.properties,
                            arrival=self._clock(), dead_letters=self.dead_letters)
                        if event is None:
                            continue
                        try:
                            await self.sink(event)
                        except Exception as exc:  # one message never stops the listener
                            _log.exception("lifecycle: handling %s failed", message.topic.value)
                            self.dead_letters.record("lifecycle_failed", message.topic.value,
                                                     repr(exc), bytes(payload))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                await asyncio.sleep(retry.log(_log, exc, "lifecycle: "))
