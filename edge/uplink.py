"""The agent's connection to the broker: drains the disk queue over MQTT 5 and never gives up.

:class:`Uplink` is the ``Running…`` wrapper of the edge agent: it owns the connection, reconnects
with exponential backoff and full jitter, keeps a persistent session (``clean_start=False`` and a
session expiry), publishes the retained birth message and registers the retained last will,
applies remote config, and sends the records of the agent's :class:`~edge.queue.DiskQueue` with
QoS 1, at most ``window`` awaiting their PUBACK. While core's ingest asks devices to hold back
(retained :data:`~edge.schema.INGEST_FLOW_TOPIC`, the stream is nearly full of unread data) it
sends nothing new: the records wait in the disk queue. A record is deleted from disk only after its
PUBACK; whatever was in flight when a connection drops is sent again on the next one (the
receiver drops duplicates by ``(device_id, boot_id, seq)``).

It runs on the caller's event loop (aiomqtt drives paho-mqtt from it), so one process can run a
whole fleet of uplinks::

    async with Uplink(agent, BrokerConfig(host="127.0.0.1", port=1883, username="hp-0001",
                                          password="…")) as uplink:
        agent.add_samples(t, values)
        uplink.notify()                     # records are waiting
        await uplink.wait_drained(10.0)

>>> from edge.queue import DiskQueue
>>> BrokerConfig(host="broker.example", port=8883).tls is None
True
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, cast

import aiomqtt
import paho.mqtt.client as mqtt_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.errors import PublishError
from edge.queue import DiskQueue, QueuedRecord
from edge.schema import (
    CONTENT_TYPE_JSON,
    INGEST_FLOW_TOPIC,
    IngestFlow,
    config_desired_topic,
    config_reported_topic,
    status_topic,
)
from edge.tasks import cancel_and_wait

__all__ = ["BrokerConfig", "TlsFiles", "Uplink"]

_log = logging.getLogger(__name__)

#: PUBACK reason codes that will not change on a retry: the record is dropped (and counted)
_REFUSED_FOR_GOOD = {0x90: "topic name invalid", 0x95: "packet too large",
                     0x99: "payload format invalid"}
#: how long a new session waits for a retained ingest hold before it sends
_FLOW_SETTLE_S = 0.05
#: the record being published by the current task (maps paho's message id to it)
_RECORD: contextvars.ContextVar[int | None] = contextvars.ContextVar("record", default=None)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """TLS to the broker: the CA that signed it, and optionally this device's client certificate.

    With ``cert_file``/``key_file`` and mosquitto's ``require_certificate true`` +
    ``use_identity_as_username true``, the certificate's CN is the device's identity (and the
    ``%u`` of the ACL); no password is needed.
    """

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where and as whom an uplink connects."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: TlsFiles | None = None
    keepalive_s: int = 30
    #: how long the broker keeps the session (subscriptions, queued config) while we are away
    session_expiry_s: int = 3600
    #: a PUBACK, SUBACK or CONNACK slower than this counts as a broken connection
    timeout_s: float = 15.0
    #: "3.1.1" for brokers without MQTT 5 (the demo's embedded amqtt broker): no session
    #: expiry, no content type (receivers tell zlib by the first byte), PUBACKs without a
    #: reason code
    protocol: Literal["3.1.1", "5"] = "5"


class Uplink:
    """Sends an agent's disk queue to the broker; an async context manager.

    ``window`` caps messages awaiting PUBACK (paho's own in-flight cap is set to the same value,
    so paho never queues and never refuses). ``backoff`` spaces reconnect attempts.
    """

    def __init__(
        self,
        agent: EdgeAgent,
        broker: BrokerConfig,
        *,
        window: int = 16,
        backoff: Backoff | None = None,
        client_id: str | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        if agent.queue is None:
            raise ValueError("an Uplink sends a disk queue: build the EdgeAgent with queue=")
        self.agent = agent
        self.queue: DiskQueue = agent.queue
        self.broker = broker
        self.window = window
        self.client_id = client_id or agent.device_id
        self._backoff = backoff or Backoff()
        self._work = asyncio.Event()
        self._progress = asyncio.Event()
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: self-metrics
        self.connects = 0
        self.connection_losses = 0
        self.records_acked = 0
        #: sessions ended because the broker refused a record (the record was kept)
        self.refusals = 0
        self._refusals: dict[int, int] = {}
        self._last_desired: bytes | None = None
        #: loop time until which core's ingest asked to hold telemetry back (0: not held)
        self._held_until = 0.0
        #: holds core's ingest asked for (:data:`edge.schema.INGEST_FLOW_TOPIC`)
        self.holds = 0
        self.last_error: str | None = None
        #: told one line per change of the connection (connecting, connected, cannot reach,
        #: lost), for a person watching one agent; a fleet leaves it out
        self._on_state = on_state
        self._session_up = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Uplink:
        self._task = asyncio.create_task(self._run(), name=f"uplink-{self.client_id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Say ``offline`` (retained) if connected, then disconnect cleanly."""
        self._stopping = True
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self._publish_status(client, "offline", "shutdown")
        if self._task is not None:
            await cancel_and_wait([self._task])
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def notify(self) -> None:
        """Tell the uplink that new records are on disk."""
        self._work.set()

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the queue is empty; ``False`` if it was not within ``timeout_s``."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.queue.depth:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 1.0))
        return True

    @property
    def held(self) -> bool:
        """Whether core's ingest asked this device to hold its telemetry back, for now."""
        return asyncio.get_running_loop().time() < self._held_until

    def _apply_flow(self, payload: bytes) -> None:
        """Hold (or release) the queue as the retained flow message says; ignore a bad one."""
        try:
            flow = IngestFlow.model_validate_json(payload)
        except ValueError:
            _log.warning("%s: ignoring a malformed ingest flow message", self.client_id)
            return
        if flow.hold:
            if not self.held:
                self.holds += 1
                _log.info("%s: core's ingest is full: holding telemetry (queue %d)",
                          self.client_id, self.queue.depth)
            self._held_until = asyncio.get_running_loop().time() + flow.hold_s
        else:
            self._held_until = 0.0
        self._work.set()

    # --- the connection loop -----------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` of the broker, for messages."""
        return f"{self.broker.host}:{self.broker.port}"

    def _tell(self, line: str) -> None:
        if self._on_state is not None:
            self._on_state(line)

    async def _run(self) -> None:
        self._tell(f"connecting to {self.address} as {self.broker.username or self.client_id}")
        while True:
            self._session_up = False
            try:
                await self._session()
            except* aiomqtt.MqttError as group:
                self.last_error = "; ".join(str(e) for e in group.exceptions)
            except* PublishError as group:
                self.last_error = "; ".join(str(e) for e in group.exceptions)
                self.refusals += 1
                _log.warning("%s: %s", self.client_id, self.last_error)
            except* Exception as group:
                # e.g. the disk queue failing (disk full): keep trying, the records are safe
                self.last_error = "; ".join(repr(e) for e in group.exceptions)
                _log.exception("%s: uplink failed, retrying", self.client_id)
            self.connected.clear()
            self._client = None
            self.connection_losses += 1
            delay = self._backoff.next_delay()
            # one line per attempt: the backoff spaces them, so a dead broker is no flood
            if self._session_up:
                line = (f"connection to {self.address} lost: {self.last_error}; "
                        f"reconnecting in {delay:.1f} s")
            else:
                line = (f"cannot reach broker {self.address}: {self.last_error}; "
                        f"retrying in {delay:.1f} s")
            _log.debug("%s: %s", self.client_id, line)
            self._tell(line)
            await asyncio.sleep(delay)

    def _new_client(self) -> aiomqtt.Client:
        broker = self.broker
        v5 = broker.protocol == "5"
        connect: Properties | None = None
        if v5:
            connect = _properties(PacketTypes.CONNECT)
            connect.SessionExpiryInterval = broker.session_expiry_s
        will = aiomqtt.Will(
            status_topic(self.agent.tenant, self.agent.device_id),
            self.agent.status("offline", "connection_lost").model_dump_json().encode(),
            qos=1, retain=True,
        )
        tls = None
        if broker.tls is not None:
            tls = aiomqtt.TLSParameters(
                ca_certs=broker.tls.ca_file, certfile=broker.tls.cert_file,
                keyfile=broker.tls.key_file, cert_reqs=ssl.CERT_REQUIRED,
            )
        client = aiomqtt.Client(
            broker.host, broker.port, username=broker.username, password=broker.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will, clean_session=None if v5 else False,
            clean_start=False if v5 else mqtt_client.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect, keepalive=broker.keepalive_s,
            timeout=broker.timeout_s, tls_params=tls, max_inflight_messages=self.window,
            max_queued_outgoing_messages=0,
        )
        # our window is the limit by design: aiomqtt's "pending calls" warning would fire on it
        client.pending_calls_threshold = self.window + 2
        self._watch_pubacks(client)
        return client

    def _watch_pubacks(self, client: aiomqtt.Client) -> None:
        """Keep each PUBACK's reason code: aiomqtt treats a refusal (e.g. 0x87 not authorized by
        the ACL) as success, and deleting a refused record would lose it silently."""
        paho = client._client  # aiomqtt exposes no reason codes; it is paho underneath
        forward_publish = paho.publish
        # the VERSION2 signature (client, userdata, mid, reason_code, properties), as aiomqtt uses
        forward_on_publish = cast(Callable[..., None], paho.on_publish)
        mids: dict[int, int] = {}
        self._refusals.clear()  # a refusal from a dead session must not stick to a resend

        def publish(*args: Any, **kwargs: Any) -> Any:
            info = forward_publish(*args, **kwargs)
            record_id = _RECORD.get()
            if record_id is not None:
                mids[info.mid] = record_id
            return info

        def on_publish(paho_client: Any, userdata: Any, mid: int, reason_code: Any,
                       properties: Any) -> None:
            record_id = mids.pop(mid, None)
            if record_id is not None and getattr(reason_code, "is_failure", False):
                self._refusals[record_id] = int(reason_code.value)
            forward_on_publish(paho_client, userdata, mid, reason_code, properties)

        paho.publish = publish  # type: ignore[method-assign]
        paho.on_publish = on_publish

    async def _session(self) -> None:
        client = self._new_client()
        async with client:
            self._session_up = True
            self._client = client
            self._backoff.reset()
            self.connects += 1
            self._tell(f"connected to {self.address}")
            await client.subscribe(config_desired_topic(self.agent.tenant, self.agent.device_id),
                                   qos=1)
            await client.subscribe(INGEST_FLOW_TOPIC, qos=1)
            await self._publish_status(client, "online")
            self.connected.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._receive_config(client))
                group.create_task(self._report_status(client))
                group.create_task(self._send_queue(client, group))

    async def _send_queue(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        in_flight: set[int] = set()
        slots = asyncio.Semaphore(self.window)
        # a retained hold arrives with the subscription's SUBACK, before the status PUBACK we
        # just had: give the receiving task a moment to apply it before the first send
        await asyncio.sleep(_FLOW_SETTLE_S)
        while True:
            await slots.acquire()
            while self.held:  # core's ingest is full: the records wait here, on disk
                self._work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), 0.5)
            records = self.queue.peek(1, exclude=in_flight)
            while not records:
                self._work.clear()
                # a missed notify() only delays sending by a second
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), 1.0)
                records = self.queue.peek(1, exclude=in_flight)
            record = records[0]
            in_flight.add(record.id)
            group.create_task(self._send_one(client, record, in_flight, slots))

    async def _send_one(self, client: aiomqtt.Client, record: QueuedRecord,
                        in_flight: set[int], slots: asyncio.Semaphore) -> None:
        _RECORD.set(record.id)  # this task's context only
        while self.held:  # a hold that came after this record was picked: it waits too
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), 0.5)
        await client.publish(record.topic, record.payload, qos=1,
                             properties=self._publish_properties(record.content_type))
        refusal = self._refusals.pop(record.id, None)
        if refusal in _REFUSED_FOR_GOOD:
            _log.error("%s: broker refused record %d for good (%s): dropped", self.client_id,
                       record.id, _REFUSED_FOR_GOOD[refusal])
            self.queue.drop(record.id)
        elif refusal is not None:
            # not authorized, quota exceeded...: keep the record, back off, try again later
            raise PublishError(f"broker refused record {record.id} of {record.topic}: "
                               f"reason code 0x{refusal:02x}")
        else:
            self.queue.ack(record.id)
            self.records_acked += 1
        in_flight.discard(record.id)
        slots.release()
        self._progress.set()

    async def _receive_config(self, client: aiomqtt.Client) -> None:
        desired = config_desired_topic(self.agent.tenant, self.agent.device_id)
        reported = config_reported_topic(self.agent.tenant, self.agent.device_id)
        async for message in client.messages:
            payload = message.payload
            if message.topic.matches(INGEST_FLOW_TOPIC) and isinstance(payload, bytes | bytearray):
                self._apply_flow(bytes(payload))
                continue
            if not message.topic.matches(desired) or not isinstance(payload, bytes | bytearray) \
                    or not payload:
                continue  # an empty retained message clears the desired config: keep ours
            if bytes(payload) == self._last_desired:
                continue  # the retained copy again, after a reconnect: already handled
            self._last_desired = bytes(payload)
            report = self.agent.apply_config(bytes(payload))
            _log.info("%s: config revision %s %s %s", self.client_id, report.revision,
                      report.status, report.reason or "")
            await client.publish(reported, report.model_dump_json().encode(), qos=1, retain=True,
                                 properties=self._publish_properties(CONTENT_TYPE_JSON))

    async def _report_status(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.agent.status_interval_s)
            if not self._stopping:
                await self._publish_status(client, "online")

    async def _publish_status(
        self, client: aiomqtt.Client, state: str,
        reason: Literal["shutdown", "connection_lost"] | None = None,
    ) -> None:
        status = self.agent.status("online" if state == "online" else "offline", reason)
        await client.publish(status_topic(self.agent.tenant, self.agent.device_id),
                             status.model_dump_json().encode(), qos=1, retain=True,
                             properties=self._publish_properties(CONTENT_TYPE_JSON))


    def _publish_properties(self, content_type: str) -> Properties | None:
        return _publish_properties(content_type) if self.broker.protocol == "5" else None


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho is untyped here


def _publish_properties(content_type: str) -> Properties:
    properties = _properties(PacketTypes.PUBLISH)
    properties.ContentType = content_type
    return properties
