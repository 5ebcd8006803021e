"""The ingest bridge: device telemetry from the MQTT broker into the stream, with back-pressure.

nats-server's own MQTT listener acknowledges (PUBACK) a QoS 1 publish even when the stream
refuses or later discards it, so a full stream loses telemetry silently there. The bridge is a
QoS 1 subscriber of the broker the devices connect to (mosquitto: MQTT 5, per-device auth)
with a persistent session; it publishes each message to JetStream, waits for the stream's
acknowledgement, and only then acknowledges the message to the broker
(:class:`core.ingest.Ingestor`: a message is acknowledged when the next one is asked for).

Back-pressure: the stream discards its oldest messages when it reaches ``max_bytes`` (they
are its replay window, read long ago) and loses unread telemetry only once the unread span —
from the oldest message a partition has not acknowledged to the newest — fills ``max_bytes``
(:func:`core.nats.stream.unread_fill`). Every ``[nats] fill_check_s`` the bridge reads that
span; from ``high_water`` on it stops taking messages (:class:`core.nats.backpressure.FillGate`)
until the workers have read it down below ``low_water``. Meanwhile the broker holds the rest:
up to ``bridge_receive_maximum`` in flight to the bridge, the others queued in its session
(mosquitto's ``max_queued_messages``/``max_queued_bytes`` bound that queue; what it drops
shows as gaps in the devices' batch sequences, counted per device). With ``hold_devices`` it
also publishes the retained :data:`edge.schema.INGEST_FLOW_TOPIC` message edge agents obey:
they keep sampling into their disk queues and send nothing new until it is released (or runs
out, ``device_hold_s`` after its last refresh). Nothing is acknowledged to
the broker that the stream did not store. Each closed stretch is one episode, handed to
``on_episode`` once when it starts and once when it ends (the service turns them into a team
notice; ``/metrics`` shows the gauge).

The devices' lifecycle messages (status, agent events, reported configs: the same topics with
``status``, ``event`` or ``config/reported`` in place of ``telemetry``) take the same way, so
they land in the device's partition in order with its telemetry (only telemetry counts towards
the per-device forwarded and gap counts). Topic ``forewarn/v1/acme/hp.1/telemetry`` goes to
subject ``forewarn.v1.acme.hp//1.telemetry`` as nats-server's MQTT listener would write it, so
the stream's transform is the same:

>>> subject_of_topic("forewarn/v1/acme/hp.1/telemetry")
'forewarn.v1.acme.hp//1.telemetry'
>>> lifecycle_subscriptions_beside("$share/fw/forewarn/v1/+/+/telemetry")[0]
'$share/fw/forewarn/v1/+/+/status'
>>> batch_position(b'{"v": 1, "device_id": "hp-1", "boot_id": "b7", "seq": 12, "t": [1]}')
('b7', 12)
>>> batch_position(b"garbage")
(None, None)
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import aiomqtt
import nats
from nats.aio.client import Client as NatsClient
from nats.errors import BadSubjectError, MaxPayloadError
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from core.config import MqttConfig
from core.ingest import Delivery, Ingestor
from core.lifecycle import LIFECYCLE_KINDS
from core.nats.backpressure import DeviceLedger, FillGate
from core.nats.config import NatsConfig
from core.nats.stream import unread_fill
from edge.backoff import full_jitter
from edge.schema import INGEST_FLOW_TOPIC, IngestFlow, decode_payload, parse_topic
from edge.tasks import cancel_and_wait

__all__ = ["Episode", "IngestBridge", "batch_position", "lifecycle_subscriptions_beside",
           "subject_of_topic"]

_log = logging.getLogger(__name__)

_BOOT = re.compile(rb'"boot_id"\s*:\s*"([^"\\]{1,64})"')
_SEQ = re.compile(rb'"seq"\s*:\s*(\d{1,19})\b')


def subject_of_topic(topic: str) -> str:
    """The NATS subject of an MQTT topic (``.`` in a level becomes ``//``, ``/`` becomes ``.``)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def lifecycle_subscriptions_beside(subscription: str) -> tuple[str, ...]:
    """The lifecycle filters of the devices a telemetry ``subscription`` covers (none for a
    filter that does not end in ``/telemetry``)."""
    base, _, kind = subscription.rpartition("/")
    if kind != "telemetry":
        return ()
    return tuple(f"{base}/{lifecycle}" for lifecycle in LIFECYCLE_KINDS)


def batch_position(payload: bytes) -> tuple[str | None, int | None]:
    """A telemetry batch's (boot_id, seq), without validating it (None where it cannot tell)."""
    try:
        body = decode_payload(payload)
    except ValueError:  # edge's PayloadError
        return None, None
    boot, seq = _BOOT.search(body), _SEQ.search(body)
    return (boot.group(1).decode() if boot else None, int(seq.group(1)) if seq else None)


@dataclass(frozen=True, slots=True)
class Episode:
    """A back-pressure episode starting or ending, as the bridge reports it."""

    kind: Literal["started", "ended"]
    #: the episode's number since the bridge started (its start and end share it)
    number: int
    #: wall-clock time the episode started (identifies it across its start and end)
    started_at: float
    #: the stream's unread span (share of ``[nats] max_bytes``) when it was seen
    fill: float
    #: batches missing from devices' sequences so far (discarded before the bridge)
    gaps: int
    #: how long this episode held telemetry back (0 when it just started)
    paused_s: float


class IngestBridge:
    """Forwards the broker's telemetry to the stream until cancelled; see the module doc.

    Usage::

        async with IngestBridge(settings.nats, settings.mqtt) as bridge:
            await bridge.run()
    """

    def __init__(self, cfg: NatsConfig, mqtt: MqttConfig,
                 on_episode: Callable[[Episode], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.mqtt = mqtt.model_copy(update={"client_id": cfg.bridge_client_id,
                                            "subscription": cfg.bridge_subscription})
        self.on_episode = on_episode
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.gate = FillGate(cfg.high_water, cfg.low_water, clock=clock)
        self.ledger = DeviceLedger()
        self.ingestor = Ingestor(self.mqtt, rng=self.rng,
                                 receive_maximum=cfg.bridge_receive_maximum,
                                 extra_subscriptions=lifecycle_subscriptions_beside(
                                     cfg.bridge_subscription))
        #: messages that cannot be NATS messages (a topic that is no subject, a payload above
        #: the server's max_payload), dropped and counted per device
        self.unroutable: dict[tuple[str, str], int] = {}
        #: sequence gaps are counted only when this bridge sees all of a device's messages: a
        #: shared subscription ("$share/…") deals them out among several bridges
        self.count_gaps = not cfg.bridge_subscription.startswith("$share/")
        #: lifecycle messages (status, agent events, reported configs) stored in the stream
        self.lifecycle_forwarded = 0
        #: flow messages published to the devices (holds, their refreshes and releases)
        self.device_announcements = 0
        self._opened = asyncio.Event()
        self._opened.set()
        self._in_order = asyncio.Event()
        self._in_order.set()
        self._episode_started_at = 0.0
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    async def __aenter__(self) -> IngestBridge:
        self._nc = await nats.connect(self.cfg.url, max_reconnect_attempts=-1,
                                      name=self.cfg.bridge_client_id)
        self._js = self._nc.jetstream()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._nc is not None:
            await self._nc.close()

    @property
    def paused(self) -> bool:
        """Whether the bridge is holding messages back (a back-pressure episode)."""
        return not self.gate.is_open

    async def run(self) -> None:
        """Forward messages and watch the fill level until cancelled.

        Up to ``bridge_window`` publishes are in flight at once, sent in the order the broker
        delivered the messages; each message is acknowledged to the broker once the stream
        stored it. A publish that fails stops new ones until every one in flight has finished;
        the failed ones are then sent again, one at a time in their order, before the window
        opens again.
        """
        slots = asyncio.Semaphore(self.cfg.bridge_window)
        in_flight: asyncio.Queue[_InFlight] = asyncio.Queue()
        tasks = [asyncio.create_task(self._watch_fill(), name="stream fill"),
                 asyncio.create_task(self._settle(in_flight, slots), name="bridge acks"),
                 asyncio.create_task(self._take(in_flight, slots), name="bridge publishes")]
        try:
            # none of them ends by itself: one that does failed, and so does the bridge
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise RuntimeError(f"ingest bridge task {done.pop().get_name()} ended")
        finally:
            await cancel_and_wait(tasks)
            while not in_flight.empty():  # unacknowledged: the broker sends them again
                in_flight.get_nowait().publish.cancel()

    async def _take(self, in_flight: asyncio.Queue[_InFlight],
                    slots: asyncio.Semaphore) -> None:
        """Take the broker's messages and start their publishes, in order."""
        async for delivery in self.ingestor.deliveries():
            await slots.acquire()
            await self._opened.wait()  # back-pressure
            await self._in_order.wait()  # failed publishes being sent again
            route = _route(delivery.topic)
            in_flight.put_nowait(_InFlight(delivery, route, asyncio.create_task(
                self._publish(route, delivery.payload))))

    async def _publish(self, route: _Route, payload: bytes) -> None:
        assert self._js is not None
        await self._js.publish(route.subject, payload, timeout=5.0)

    async def _settle(self, in_flight: asyncio.Queue[_InFlight],
                      slots: asyncio.Semaphore) -> None:
        """Acknowledge each message once stored, in order; on a failure, send again."""
        while True:
            head = await in_flight.get()
            try:
                await head.publish
            except (BadSubjectError, MaxPayloadError):
                self._unroutable(head)
            except (NatsError, TimeoutError) as exc:
                _log.warning("publish to %s failed: %r; sending again", head.route.subject, exc)
                self._in_order.clear()
                rest = [head]
                while not in_flight.empty():
                    rest.append(in_flight.get_nowait())
                await asyncio.gather(*(m.publish for m in rest), return_exceptions=True)
                for message in rest:
                    failed = message.publish.exception() is not None
                    if failed and not await self._forward(message.route,
                                                          message.delivery.payload):
                        self._unroutable(message)
                    else:
                        self._stored(message)
                    slots.release()
                self._in_order.set()
                continue
            else:
                self._stored(head)
            slots.release()

    def _stored(self, message: _InFlight) -> None:
        if message.delivery.topic.endswith("/telemetry"):
            boot, seq = (batch_position(message.delivery.payload) if self.count_gaps
                         else (None, None))
            self.ledger.forwarded(message.route.tenant, message.route.device_id, boot, seq)
        else:  # lifecycle: no batch sequence, not in the telemetry ledger
            self.lifecycle_forwarded += 1
        message.delivery.ack()

    def _unroutable(self, message: _InFlight) -> None:
        key = (message.route.tenant, message.route.device_id)
        self.unroutable[key] = self.unroutable.get(key, 0) + 1
        _log.error("message of %s on %r is no NATS message (bad subject or too large): "
                   "dropped, counted", message.route.device_id, message.delivery.topic)
        message.delivery.ack()

    async def _watch_fill(self) -> None:
        assert self._js is not None
        announced_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._observe(await unread_fill(self._js, self.cfg))
            except (NatsError, TimeoutError) as exc:  # a figure missed: the next look will do
                _log.debug("stream fill unknown: %s", exc)
            if self.paused and self.cfg.hold_devices \
                    and loop.time() - announced_at >= self.cfg.device_hold_s / 3:
                announced_at = loop.time()
                await self._tell_devices(hold=True)
            await asyncio.sleep(self.cfg.fill_check_s)

    async def _tell_devices(self, hold: bool) -> None:
        """Publish the retained flow message edge agents hold back by (or release them)."""
        flow = IngestFlow(hold=hold, hold_s=self.cfg.device_hold_s)
        mqtt = self.mqtt
        try:
            async with aiomqtt.Client(
                    mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                    identifier=f"{self.cfg.bridge_client_id}-flow",
                    protocol=(aiomqtt.ProtocolVersion.V5 if mqtt.protocol == "5"
                              else aiomqtt.ProtocolVersion.V311)) as client:
                await client.publish(INGEST_FLOW_TOPIC, flow.model_dump_json().encode(), qos=1,
                                     retain=True)
            self.device_announcements += 1
        except aiomqtt.MqttError as exc:
            # a hold is repeated by the next rounds; a lost release runs out by itself
            # (device_hold_s after the last hold)
            _log.warning("devices not told to %s: %s", "hold" if hold else "resume", exc)

    async def _observe(self, fill: float) -> None:
        change = self.gate.observe(fill)
        if change is None:
            return
        if change == "started":
            self._opened.clear()
            self._episode_started_at = self.wall_clock()
        else:
            self._opened.set()
            if self.cfg.hold_devices:
                await self._tell_devices(hold=False)
        totals = self.ledger.totals()
        episode = Episode(change, self.gate.episodes, self._episode_started_at, fill,
                          totals.gaps,
                          0.0 if change == "started" else self.gate.last_episode_s)
        if change == "started":
            _log.error("ALERT back-pressure: stream %s is %.0f%% full of unread telemetry; "
                       "the ingest bridge "
                       "holds telemetry at the broker until it is below %.0f%%",
                       self.cfg.stream, fill * 100, self.cfg.low_water * 100)
        else:
            _log.warning("back-pressure over: stream %s at %.0f%%; forwarding again",
                         self.cfg.stream, fill * 100)
        if self.on_episode is not None:
            try:
                await self.on_episode(episode)
            except Exception:  # the alert's delivery must not stop the telemetry
                _log.exception("back-pressure episode %d not reported", episode.number)

    async def _forward(self, route: _Route, payload: bytes) -> bool:
        """Publish until the stream stored it (True) or it cannot be a NATS message (False)."""
        attempt = 0
        while True:
            try:
                await self._publish(route, payload)
            except (BadSubjectError, MaxPayloadError):
                return False
            except (NatsError, TimeoutError) as exc:
                # no stream yet (the workers create it), NATS away: hold the message
                _log.warning("publish to %s failed: %r; retrying", route.subject, exc)
            else:
                return True
            attempt += 1
            await asyncio.sleep(full_jitter(attempt, 0.05, 2.0, self.rng))


@dataclass(frozen=True, slots=True)
class _Route:
    tenant: str
    device_id: str
    subject: str


def _route(topic: str) -> _Route:
    try:
        parts = parse_topic(topic)
    except ValueError:  # edge's TopicError: counted under the topic
        return _Route("", topic, subject_of_topic(topic))
    return _Route(parts.tenant, parts.device_id, subject_of_topic(topic))


@dataclass(frozen=True, slots=True)
class _InFlight:
    delivery: Delivery
    route: _Route
    publish: asyncio.Task[None]
