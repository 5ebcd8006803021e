"""The versioned message schema every part of forewarn agrees on.

Topics::

    forewarn/v1/{tenant}/{device_id}/telemetry   batches of samples (QoS 1)
    forewarn/v1/{tenant}/{device_id}/status      retained birth / last-will message

A telemetry payload is JSON, columnar so that a batch of many samples stays small and decodes
straight into arrays::

    {"v": 1, "device_id": "hp-0001", "boot_id": "b7f3", "seq": 12, "product": "heat_pump",
     "fields": ["compressor_current", "discharge_temp"],
     "t": [1700000000.0, 1700000060.0],
     "values": [[7.1, 61.0], [7.3, null]]}

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
"""

from __future__ import annotations

import math
import re
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_FIELDS",
    "MAX_SAMPLES_PER_BATCH",
    "SCHEMA_VERSION",
    "TOPIC_ROOT",
    "StatusMessage",
    "TelemetryBatch",
    "TopicError",
    "TopicParts",
    "parse_topic",
    "status_topic",
    "telemetry_subscription",
    "telemetry_topic",
]

SCHEMA_VERSION = 1
TOPIC_ROOT = "forewarn/v1"
MAX_SAMPLES_PER_BATCH = 10_000
MAX_FIELDS = 64

# Names that are safe as MQTT topic levels, SQL values, InfluxDB tags and file names.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_NAME_RE = re.compile(_NAME)


class TopicError(ValueError):
    """A topic that does not follow the forewarn layout."""


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


def telemetry_subscription(tenant: str = "+") -> str:
    """Subscription filter for the telemetry of every device of a tenant (or of all tenants)."""
    return f"{TOPIC_ROOT}/{tenant}/+/telemetry"


def parse_topic(topic: str) -> TopicParts:
    """Split a forewarn topic; raise :class:`TopicError` for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or not parts[2] or not parts[3]:
        raise TopicError(f"not a forewarn topic: {topic!r}")
    if parts[4] not in ("telemetry", "status"):
        raise TopicError(f"unknown message kind {parts[4]!r} in topic {topic!r}")
    return TopicParts(parts[2], parts[3], parts[4])


class TelemetryBatch(BaseModel):
    """A batch of samples of one device: the unit that crosses MQTT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=_NAME)
    boot_id: str = Field(pattern=_NAME)
    seq: int = Field(ge=0, lt=2**63)
    product: str = Field(default="generic", pattern=_NAME)
    firmware: str | None = Field(default=None, max_length=64)
    fields: list[str] = Field(min_length=1, max_length=MAX_FIELDS)
    t: list[float] = Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH)
    values: list[list[float | None]] = Field(min_length=1, max_length=MAX_SAMPLES_PER_BATCH)

    @model_validator(mode="after")
    def _check_shape(self) -> TelemetryBatch:
        for name in self.fields:
            if not _NAME_RE.match(name):
                raise ValueError(f"field name {name!r} is not a valid name")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("field names repeat")
        if len(self.t) != len(self.values):
            raise ValueError(f"{len(self.t)} timestamps but {len(self.values)} rows of values")
        width = len(self.fields)
        for i, row in enumerate(self.values):
            if len(row) != width:
                raise ValueError(f"row {i} has {len(row)} values for {width} fields")
            for value in row:
                if value is not None and not math.isfinite(value):
                    raise ValueError(f"row {i} holds a non-finite value; send null for missing")
        for ts in self.t:
            if not math.isfinite(ts) or ts < 0:
                raise ValueError("timestamps must be finite epoch seconds")
        return self

    @property
    def n_samples(self) -> int:
        """How many timestamps (rows) the batch holds."""
        return len(self.t)


class StatusMessage(BaseModel):
    """Birth message / last will of a device agent, published retained."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(pattern=_NAME)
    boot_id: str = Field(pattern=_NAME)
    state: Literal["online", "offline"]
    firmware: str | None = Field(default=None, max_length=64)
    queue_depth: int = Field(default=0, ge=0)
    dropped: int = Field(default=0, ge=0)
