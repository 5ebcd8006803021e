"""Configuration models of the core service (the application shell loads them from TOML/env).

>>> MqttConfig().port
1883
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.events import EVENT_THRESHOLD

__all__ = ["CoreConfig", "MqttConfig"]


class MqttConfig(BaseModel):
    """Where core subscribes to device telemetry."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    #: 0: any free port, for the embedded broker only (forewarn's settings check that)
    port: int = Field(default=1883, ge=0, le=65535)
    username: str | None = None
    password: str | None = None
    client_id: str = "forewarn-core"
    #: MQTT protocol version; "3.1.1" for brokers without MQTT 5 (the embedded demo broker)
    protocol: Literal["3.1.1", "5"] = "5"
    #: subscription filter; '+' levels stand for tenant and device
    subscription: str = "forewarn/v1/+/+/telemetry"
    #: how long the broker keeps core's session (and its QoS 1 messages) while core is away
    session_expiry_s: int = Field(default=3600, ge=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class CoreConfig(BaseModel):
    """Core's processing settings."""

    model_config = ConfigDict(extra="forbid")

    #: a field whose anomaly score reaches this emits one detector event (onset)
    event_threshold: float = Field(default=EVENT_THRESHOLD, gt=0.0, le=1.0)
    #: batches remembered per device boot for duplicate detection
    dedup_window: int = Field(default=4096, ge=16)
    #: product limits (product → field → lo/hi) handed to each device's detector; a missing
    #: file means no limits
    limits_file: Path | None = Path("config/limits.yaml")
    #: a batch with a timestamp further than this in the future (seconds after core's clock)
    #: is dead-lettered as ``future_timestamp``: a device with a wrong clock must not write
    #: data that every later reading sorts before
    future_horizon_s: float = Field(default=86_400.0, gt=0)
    #: dead letters kept in the case database (the newest; totals by reason are kept apart)
    dead_letters_keep: int = Field(default=100_000, ge=100)
    #: series (fields) one device may hold; past it, its least recently used series is
    #: forgotten (counted): a device renaming its fields cannot grow core's state for ever
    max_series_per_device: int = Field(default=256, ge=64)
    #: device boots the duplicate filter remembers per device (least recently used go first)
    max_boots_per_device: int = Field(default=8, ge=1)
