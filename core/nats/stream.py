"""The partitioned device stream: its definition, subject ↔ topic mapping and fill alert.

nats-server's MQTT listener turns the MQTT topic ``forewarn/v1/acme/hp-1/telemetry`` into the
subject ``forewarn.v1.acme.hp-1.telemetry`` (a ``.`` inside a topic level becomes ``//``). The
stream captures those subjects, and the same devices' lifecycle messages (``status``,
``event``, ``config.reported``), and with a subject transform stores each message under
``fw.tp.{partition(P, tenant, device)}.{tenant}.{device}.{kind}``: a device always lands in
the same partition, so one consumer sees all of a device's batches and lifecycle messages, in
the order they arrived.

>>> cfg = NatsConfig(partitions=8)
>>> stream_config(cfg).subject_transform.dest
'fw.tp.{{partition(8,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.>'
>>> _transform_dest(NatsConfig(ingress_subject="forewarn.v1.acme.*.telemetry", partitions=4))
'fw.tp.{{partition(4,1)}}.acme.{{wildcard(1)}}.>'
>>> topic_of_subject("fw.tp.3.acme.hp//7.telemetry", cfg)
'forewarn/v1/acme/hp.7/telemetry'
>>> topic_of_subject("fw.tp.3.acme.hp-1.config.reported", cfg)
'forewarn/v1/acme/hp-1/config/reported'
>>> partition_of_subject("fw.tp.3.acme.hp//7.status")
3

A stream made before lifecycle messages were routed stored telemetry without the kind
(``fw.tp.3.acme.hp-1``); :func:`ensure_stream` widens such a stream in place (the partition
of every device stays the same) and its old messages still read as telemetry:

>>> topic_of_subject("fw.tp.3.acme.hp-1", cfg)
'forewarn/v1/acme/hp-1/telemetry'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from core.nats.config import NatsConfig

__all__ = [
    "FillAlert",
    "StreamMonitor",
    "ensure_stream",
    "partition_of_subject",
    "stream_config",
    "topic_of_subject",
    "unread_fill",
    "unread_share",
]

_log = logging.getLogger(__name__)


def stream_config(cfg: NatsConfig) -> StreamConfig:
    """The stream definition: file storage, limits retention, discard old, partition transform."""
    return StreamConfig(
        name=cfg.stream,
        subjects=cfg.ingress_subjects(),
        subject_transform=SubjectTransform(src=_transform_src(cfg), dest=_transform_dest(cfg)),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=cfg.max_age_s,
        max_bytes=cfg.max_bytes,
        num_replicas=cfg.replicas,
        # MQTT QoS 1 redeliveries from a device carry the same payload; core drops them by
        # (device, boot, seq), so the stream's own dedup window is not needed
        duplicate_window=0,
    )


def _transform_src(cfg: NatsConfig) -> str:
    """The ingress subject with its kind (``telemetry``) widened to every kind: ``….>``."""
    return cfg.ingress_subject.rsplit(".", 1)[0] + ".>"


def _transform_dest(cfg: NatsConfig, legacy: bool = False) -> str:
    """``{prefix}.{{partition(P,…)}}.{tenant}.{device}.>`` for the ingress subject's wildcards
    (``legacy``: without the kind, as streams made before lifecycle routing stored telemetry).

    The ingress subject is ``forewarn.v1.<tenant>.<device>.telemetry`` where tenant may be a
    literal (one stream per tenant, as the tests do) and device is a ``*``.
    """
    tokens = cfg.ingress_subject.split(".")
    if len(tokens) != 5 or tokens[3] != "*":
        raise ValueError(f"ingress subject {cfg.ingress_subject!r} is not "
                         "forewarn.v1.<tenant>.*.telemetry")
    wild = 0
    parts: list[str] = []
    for token in tokens[2:4]:
        if token == "*":
            wild += 1
            parts.append(f"{{{{wildcard({wild})}}}}")
        else:
            parts.append(token)
    keys = ",".join(str(i) for i in range(1, wild + 1))
    dest = f"{cfg.partition_prefix}.{{{{partition({cfg.partitions},{keys})}}}}.{'.'.join(parts)}"
    return dest if legacy else dest + ".>"


async def ensure_stream(js: JetStreamContext, cfg: NatsConfig) -> None:
    """Create the stream, or update its limits; refuse a stream with another partition count.

    Changing P would move devices to other partitions and so away from their detector state.
    A stream made before lifecycle messages were routed (telemetry only, stored without the
    kind) is widened to them: the partition hash is the same, so no device moves.
    """
    wanted = stream_config(cfg)
    try:
        info = await js.stream_info(cfg.stream)
    except NotFoundError:
        await js.add_stream(wanted)
        return
    existing = info.config.subject_transform
    if existing is not None and existing.dest == _transform_dest(cfg, legacy=True):
        _log.warning("stream %s: widening it to the devices' lifecycle subjects", cfg.stream)
        await js.update_stream(wanted)
        return
    if existing is None or wanted.subject_transform is None \
            or existing.dest != wanted.subject_transform.dest:
        raise ValueError(
            f"stream {cfg.stream} exists with transform "
            f"{existing.dest if existing else None!r}; refusing to change the partitioning"
        )
    if (info.config.max_age, info.config.max_bytes) != (wanted.max_age, wanted.max_bytes):
        try:
            await js.update_stream(wanted)
        except BadRequestError as exc:
            _log.warning("stream %s limits not updated: %s", cfg.stream, exc)


def partition_of_subject(subject: str) -> int:
    """The partition number a stored subject carries."""
    return int(subject.split(".", 3)[2])


def topic_of_subject(subject: str, cfg: NatsConfig) -> str:
    """The MQTT topic a stored subject came from (``//`` in a level was a ``.``; no kind: the
    telemetry of a stream made before lifecycle routing)."""
    tokens = subject.split(".")
    skip = cfg.partition_prefix.count(".") + 2
    tenant, device_id = (t.replace("//", ".") for t in tokens[skip:skip + 2])
    kind = "/".join(tokens[skip + 2:]) or "telemetry"
    return f"forewarn/v1/{tenant}/{device_id}/{kind}"


def unread_share(first_seq: int, last_seq: int, messages: int, nbytes: int,
                 oldest_unread: int | None, max_bytes: int) -> float:
    """The share of ``max_bytes`` the stream's unread span takes: from the oldest message some
    partition has not acknowledged (``oldest_unread``; None: all read) to the newest.

    Discard-old removes messages from the first sequence on, so read messages go first; an
    unread one goes only once this span reaches ``max_bytes``. The span's bytes are counted
    at the stream's mean message size.

    >>> unread_share(101, 200, 100, 1_000_000, 151, 2_000_000)   # 50 of 100 messages unread
    0.25
    >>> unread_share(101, 200, 100, 1_000_000, None, 2_000_000)
    0.0
    """
    if oldest_unread is None or messages == 0 or oldest_unread > last_seq:
        return 0.0
    span = last_seq - max(oldest_unread, first_seq) + 1
    return span * (nbytes / messages) / max_bytes


async def unread_fill(js: JetStreamContext, cfg: NatsConfig) -> float:
    """:func:`unread_share` of the stream now, from each partition's acknowledgement floor.

    A partition whose consumer does not exist yet has read nothing: the whole stream counts.
    """
    state = (await js.stream_info(cfg.stream)).state
    oldest: int | None = None
    for partition in range(cfg.partitions):
        try:
            consumer = await js.consumer_info(cfg.stream, cfg.consumer_name(partition))
        except NotFoundError:
            oldest = state.first_seq
            break
        if consumer.num_pending or consumer.num_ack_pending:
            floor = consumer.ack_floor.stream_seq if consumer.ack_floor else 0
            oldest = floor + 1 if oldest is None else min(oldest, floor + 1)
    return unread_share(state.first_seq, state.last_seq, state.messages, state.bytes, oldest,
                        cfg.max_bytes)


@dataclass(frozen=True, slots=True)
class FillAlert:
    """What the stream monitor found: how full the stream is and what it dropped unread."""

    fill: float
    bytes: int
    #: messages the stream discarded before a partition's consumer had acknowledged them
    lost_unread: int
    message: str


class StreamMonitor:
    """Checks the stream's fill level and whether discard-old removed unread messages.

    NATS acknowledges a publish even when a full stream then drops its oldest message, so the
    only way to notice loss is to compare the stream's first sequence with each consumer's
    acknowledgement floor. ``check()`` returns an alert (and logs it) or None.
    """

    def __init__(self, js: JetStreamContext, cfg: NatsConfig) -> None:
        self.js = js
        self.cfg = cfg
        self.alerts = 0
        #: the last look's fill level (share of ``max_bytes``) and unread discards (upper
        #: bound), for /metrics
        self.fill = 0.0
        self.lost_unread = 0

    async def check(self, partitions: range | list[int]) -> FillAlert | None:
        """One look at the stream and the given partitions' consumers."""
        info = await self.js.stream_info(self.cfg.stream)
        state = info.state
        fill = state.bytes / self.cfg.max_bytes
        lost = 0
        for partition in partitions:
            try:
                consumer = await self.js.consumer_info(
                    self.cfg.stream, self.cfg.consumer_name(partition))
            except NotFoundError:
                continue
            floor = consumer.ack_floor.stream_seq if consumer.ack_floor else 0
            if consumer.num_pending and floor + 1 < state.first_seq:
                lost += state.first_seq - floor - 1  # an upper bound: other partitions' too
        self.fill, self.lost_unread = fill, lost
        if fill < self.cfg.alert_fill and not lost:
            return None
        self.alerts += 1
        message = (f"stream {self.cfg.stream} is {fill:.0%} full ({state.bytes} bytes)"
                   + (f"; up to {lost} messages discarded before they were read" if lost else ""))
        _log.error("ALERT %s", message)
        return FillAlert(fill, state.bytes, lost, message)
