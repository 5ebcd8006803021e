"""The versioned message schema every part of forewarn agrees on.

Topics::

    forewarn/v1/{tenant}/{device_id}/telemetry         batches of samples (QoS 1)
    forewarn/v1/{tenant}/{device_id}/event             alarms and events (QoS 1, sent first)
    forewarn/v1/{tenant}/{device_id}/status            retained birth / last-will message
    forewarn/v1/{tenant}/{device_id}/config/desired    retained desired config (written by core)
    forewarn/v1/{tenant}/{device_id}/config/reported   retained applied config or rejection

A device may publish only under its own ``{device_id}`` (the broker's ``%u`` ACL; the MQTT
username is the device id) and may read only its own ``config/desired``.

A telemetry payload is JSON, columnar so that a batch of many samples stays small and decodes
straight into arrays::

    {"v": 1, "device_id": "hp-0001", "boot_id": "b7f3", "seq": 12, "product": "heat_pump",
     "fields": ["compressor_current", "discharge_temp"],
     "t": [1700000000.0, 1700000060.0],
     "values": [[7.1, 61.0], [7.3, null]]}

Payload encoding: a payload is either the JSON document itself (its first byte is ``{``) or,
when the JSON is larger than the agent's ``compress_above_bytes``, that JSON compressed with
zlib (DEFLATE, RFC 1950; its first byte is ``0x78``). The MQTT 5 *Content Type* property says
which: ``application/json`` or ``application/json+zlib``. Receivers call
:func:`decode_payload`, which trusts the content type when present and otherwise tells the two
apart by the first byte, so a bridge that strips MQTT 5 properties does not break decoding.
zlib because it is in every standard library and every embedded SDK (miniz, zlib), needs no
dictionary and compresses the columnar JSON of slowly varying readings 3-6 times; zstd would be
somewhat smaller and faster but is a third-party dependency on the device in Python 3.11.

``t`` holds epoch seconds, ``values`` one row per timestamp and one column per field; ``null`` is
a missing reading. ``seq`` counts batches per boot, so ``(device_id, boot_id, seq)`` names a batch
exactly once and a redelivered batch can be dropped.

>>> batch = TelemetryBatch(device_id="hp-1", boot_id="b1", seq=0, product="heat_pump",
...                        fields=["a"], t=[1.0, 2.0], values=[[0.5], [None]])
>>> batch.n_samples
2
>>> topic = telemetry_topic("acme", "hp-1")
>>> topic
'forewarn/v1/acme/hp-1/telemetry'
>>> parse_topic(topic)
TopicParts(tenant='acme', device_id='hp-1', kind='telemetry')
>>> parse_topic(config_desired_topic("acme", "hp-1")).kind
'config/desired'
>>> body = batch.model_dump_json().encode()
>>> payload, content_type = encode_payload(body * 20, compress_above_bytes=1024)
>>> content_type, payload[:1]
('application/json+zlib', b'x')
>>> decode_payload(payload, None) == body * 20
True
"""

from __future__ import annotations

import zlib
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.errors import PayloadError, TopicError
from edge.names import NAME_PATTERN, NAME_RE

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_ZLIB",
    "INGEST_FLOW_TOPIC",
    "MAX_DECODED_BYTES",
    "MAX_FIELDS",
    "MAX_SAMPLES_PER_BATCH",
    "MAX_TIMESTAMP_S",
    "NAME_PATTERN",
    "NAME_RE",
    "SCHEMA_VERSION",
    "TOPIC_ROOT",
    "ConfigReport",
    "DesiredConfig",
    "EventMessage",
    "IngestFlow",
    "PayloadError",
    "StatusMessage",
    "TelemetryBatch",
    "TopicError",
    "TopicParts",
    "config_desired_topic",
    "config_reported_topic",
    "decode_payload",
    "encode_payload",
    "event_topic",
    "parse_topic",
    "status_topic",
    "telemetry_subscription",
    "telemetry_topic",
]

SCHEMA_VERSION: Literal[1] = 1
TOPIC_ROOT = "forewarn/v1"
MAX_SAMPLES_PER_BATCH = 10_000
MAX_FIELDS = 64
#: the latest timestamp any message may carry: 2200-01-01T00:00:00Z in epoch seconds. Below
#: what overflows anywhere: nanoseconds in int64 (InfluxDB's own limit, 2262-04-11),
#: milliseconds in int64, ``datetime``'s year 9999 plus any duration a rule adds; core's
#: ``[core] future_horizon_s`` is the real, tighter bound
MAX_TIMESTAMP_S = 7_258_118_400.0
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_ZLIB = "application/json+zlib"
#: a decompressed payload larger than this is refused (a zip bomb must not eat core's memory)
MAX_DECODED_BYTES = 16 * 1024 * 1024
_KINDS = ("telemetry", "event", "status", "config/desired", "config/reported")
#: retained: whether devices should hold their telemetry back (core's ingest is saturated);
#: outside the ``forewarn/v1/<tenant>/<device>/…`` tree, so no device topic filter matches it
INGEST_FLOW_TOPIC = f"{TOPIC_ROOT}/_ingest/flow"



class TopicParts(NamedTuple):
    """The pieces of a forewarn topic."""

    tenant: str
    device_id: str
    kind: str


def telemetry_topic(tenant: str, device_id: str) -> str:
    """Topic a device publishes its telemetry batches to."""
    return f"{TOPIC_ROOT}/{tenant}/{device_id}/telemetry"


def status_topic(tenant: str, device_id: str) -> str:
    """Retained topic carrying a device's birth message and last will."""
    return f"{TOPIC_ROOT}/{tenant}/{device_id}/status"


def event_topic(tenant: str, device_id: str) -> str:
    """Topic a device publishes its alarms and events to."""
    return f"{TOPIC_ROOT}/{tenant}/{device_id}/event"


def config_desired_topic(tenant: str, device_id: str) -> str:
    """Retained topic holding the config core wants a device to run (a :class:`DesiredConfig`)."""
    return f"{TOPIC_ROOT}/{tenant}/{device_id}/config/desired"


def config_reported_topic(tenant: str, device_id: str) -> str:
    """Retained topic where a device reports what it applied (a :class:`ConfigReport`)."""
    return f"{TOPIC_ROOT}/{tenant}/{device_id}/config/reported"


def telemetry_subscription(tenant: str = "+") -> str:
    """Subscription filter for the telemetry of every device of a tenant (or of all tenants)."""
    return f"{TOPIC_ROOT}/{tenant}/+/telemetry"


def parse_topic(topic: str) -> TopicParts:
    """Split a forewarn topic; raise :class:`TopicError` for anything else."""
    parts = topic.split("/")
    if len(parts) not in (5, 6) or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or not parts[2] \
            or not parts[3]:
        raise TopicError(f"not a forewarn topic: {topic!r}")
    kind = "/".join(parts[4:])
    if kind not in _KINDS:
        raise TopicError(f"unknown message kind {kind!r} in topic {topic!r}")
    return TopicParts(parts[2], parts[3], kind)


def encode_payload(body: bytes, compress_above_bytes: int | None) -> tuple[bytes, str]:
    """The bytes to publish for a JSON ``body`` and their MQTT 5 content type.

    Compresses with zlib when ``body`` is longer than ``compress_above_bytes`` (``None``: never)
    and compression actually saves bytes.

    >>> encode_payload(b'{"a": 1}', 1024)
    (b'{"a": 1}', 'application/json')
    """
    if compress_above_bytes is not None and len(body) > compress_above_bytes:
        packed = zlib.compress(body, 6)
        if len(packed) < len(body):
            return packed, CONTENT_TYPE_ZLIB
    return body, CONTENT_TYPE_JSON


def decode_payload(payload: bytes, properties: object | None = None) -> bytes:
    """The JSON bytes of a received payload, decompressed if the sender compressed it.

    ``properties`` is the message's MQTT 5 properties (paho's ``Properties``, as aiomqtt's
    ``Message.properties`` gives it) or ``None``; its ``ContentType`` decides when present,
    otherwise the first byte does. Raises :class:`PayloadError` for an unknown content type,
    corrupt zlib data, or more than :data:`MAX_DECODED_BYTES` once decompressed.

    >>> decode_payload(b'{"v": 1}')
    b'{"v": 1}'
    >>> decode_payload(zlib.compress(b'{"v": 1}'))
    b'{"v": 1}'
    >>> decode_payload(b"garbage", None)
    Traceback (most recent call last):
    ...
    edge.errors.PayloadError: payload is neither JSON nor zlib (it starts b'garbage')
    """
    content_type = getattr(properties, "ContentType", None) if properties is not None else None
    if content_type is None:
        first = payload.lstrip()[:1]
        if first == b"{":
            content_type = CONTENT_TYPE_JSON
        elif first == b"\x78":
            content_type = CONTENT_TYPE_ZLIB
        else:
            raise PayloadError(f"payload is neither JSON nor zlib (it starts {payload[:8]!r})")
    if content_type == CONTENT_TYPE_JSON:
        return payload
    if content_type != CONTENT_TYPE_ZLIB:
        raise PayloadError(f"unknown content type {content_type!r}")
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(payload, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise PayloadError(f"corrupt zlib payload: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise PayloadError(
            f"zlib payload truncated or larger than {MAX_DECODED_BYTES} bytes decompressed"
        )
    return body


#: a reading: a finite number (send null for a missing one; NaN and infinities are refused)
_Reading = Annotated[float, Field(allow_inf_nan=False)]
#: epoch seconds, finite, not negative and not past :data:`MAX_TIMESTAMP_S`
_Timestamp = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_TIMESTAMP_S)]


class TelemetryBatch(BaseModel):
    """A batch of samples of one device: the unit that crosses MQTT.

    Strict: numbers are JSON numbers (``seq`` an integer), never strings or booleans, and no
    field is coerced from another type (``seq: true``, ``values: [["1.5"]]`` and
    ``[[true]]`` are refused, as the fast path refuses them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=NAME_PATTERN)
    boot_id: str = Field(pattern=NAME_PATTERN)
    seq: int = Field(ge=0, lt=2**63)
    product: str = Field(default="generic", pattern=NAME_PATTERN)
    firmware: str | None = Field(default=None, max_length=64)
    fields: list[str] = Field(min_length=1, max_length=MAX_FIELDS)
    # finiteness is checked by pydantic-core itself (allow_inf_nan=False): a Python loop over
    # every value was the slowest part of ingest
    t: list[_Timestamp] = Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH)
    values: list[list[_Reading | None]] = Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH)

    @field_validator("v", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        # a Literal compares by equality, and True == 1.0 == 1: refuse what is not an int
        if type(value) is not int:
            raise ValueError(f"the schema version must be the integer 1, not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_shape(self) -> TelemetryBatch:
        for name in self.fields:
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"field name {name!r} is not a valid name")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("field names repeat")
        if len(self.t) != len(self.values):
            raise ValueError(f"{len(self.t)} timestamps but {len(self.values)} rows of values")
        width = len(self.fields)
        if set(map(len, self.values)) != {width}:  # C-speed check; find the culprit after
            i, row = next((i, r) for i, r in enumerate(self.values) if len(r) != width)
            raise ValueError(f"row {i} has {len(row)} values for {width} fields")
        return self

    @property
    def n_samples(self) -> int:
        """How many timestamps (rows) the batch holds."""
        return len(self.t)


class StatusMessage(BaseModel):
    """Birth message / last will of a device agent, published retained."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=NAME_PATTERN)
    boot_id: str = Field(pattern=NAME_PATTERN)
    state: Literal["online", "offline"]
    firmware: str | None = Field(default=None, max_length=64)
    #: records (batches and events) waiting in the agent's disk queue
    queue_depth: int = Field(default=0, ge=0)
    #: records the disk queue dropped (cap in bytes or age) since it was created
    dropped: int = Field(default=0, ge=0)
    #: payload bytes waiting in the disk queue
    queue_bytes: int = Field(default=0, ge=0)
    #: telemetry samples inside the dropped records
    dropped_samples: int = Field(default=0, ge=0)
    #: epoch seconds when the agent wrote this message
    t: float | None = Field(default=None, ge=0, le=MAX_TIMESTAMP_S, allow_inf_nan=False)
    #: why a device is offline: "shutdown" (it said goodbye on purpose, e.g. stopped for
    #: maintenance) or "connection_lost" (the last will, published by the broker); None online
    reason: Literal["shutdown", "connection_lost"] | None = None


class EventMessage(BaseModel):
    """An alarm or event raised on the device; queued ahead of routine telemetry.

    ``seq`` counts events per boot, separately from telemetry batches, so
    ``(device_id, boot_id, seq)`` names an event exactly once on the event topic.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=NAME_PATTERN)
    boot_id: str = Field(pattern=NAME_PATTERN)
    seq: int = Field(ge=0, lt=2**63)
    t: float = Field(ge=0, le=MAX_TIMESTAMP_S, allow_inf_nan=False)
    kind: str = Field(pattern=NAME_PATTERN)
    severity: Literal["info", "warning", "alarm"] = "alarm"
    detail: dict[str, str | float | int | bool] = Field(default_factory=dict, max_length=32)


class DesiredConfig(BaseModel):
    """Config core wants a device to run, published retained on :func:`config_desired_topic`.

    Every field is optional: a missing field keeps the device's current value. An unknown key is
    an error, so a typo is rejected rather than silently ignored.

    >>> DesiredConfig.model_validate_json('{"revision": 3, "batch_max_samples": 120}')
    DesiredConfig(revision=3, batch_max_samples=120, batch_max_age_s=None, \
sample_period_s=None, compress_above_bytes=None, status_interval_s=None)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: increases with every change core makes; echoed back in the report
    revision: int = Field(ge=0)
    batch_max_samples: int | None = Field(default=None, ge=1, le=MAX_SAMPLES_PER_BATCH)
    batch_max_age_s: float | None = Field(default=None, gt=0, le=86_400)
    sample_period_s: float | None = Field(default=None, ge=0.01, le=86_400)
    compress_above_bytes: int | None = Field(default=None, ge=0)
    status_interval_s: float | None = Field(default=None, ge=1, le=86_400)


class IngestFlow(BaseModel):
    """Core's ingest telling devices to hold telemetry back, retained on
    :data:`INGEST_FLOW_TOPIC`: while ``hold`` an edge agent keeps sampling into its disk queue
    and sends nothing new, for ``hold_s`` after the last such message (refreshed while the
    hold lasts, so a stale one ends by itself).

    >>> IngestFlow.model_validate_json('{"hold": true, "hold_s": 30}').hold_s
    30.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: bool
    hold_s: float = Field(default=60.0, gt=0, le=3600)


class ConfigReport(BaseModel):
    """What a device did with a desired config, published retained on
    :func:`config_reported_topic`. ``applied`` is the full config now running (after a
    rejection: the old one, unchanged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=NAME_PATTERN)
    status: Literal["applied", "rejected"]
    revision: int | None = None
    reason: str | None = Field(default=None, max_length=1000)
    applied: dict[str, float | int | None]
