"""Remote config of a device: publish the retained desired config, and read what devices report.

``forewarn devices config set hp-0001 batch_max_samples=120`` reads the device's current
desired config from the broker (the retained message on ``…/config/desired``), merges the
changes, raises the revision by one and publishes it retained with QoS 1: the agent applies it
when it next connects, or at once if connected, and answers on ``…/config/reported``, which
core stores in the case database (``rules.lifecycle``) for ``forewarn devices show``.

>>> parse_changes(["batch_max_samples=120", "sample_period_s=30.5", "status_interval_s=none"])
{'batch_max_samples': 120, 'sample_period_s': 30.5, 'status_interval_s': None}
>>> merge_desired({"revision": 3, "sample_period_s": 30.0, "status_interval_s": 60.0},
...               {"status_interval_s": None, "batch_max_samples": 120})
{'revision': 4, 'sample_period_s': 30.0, 'batch_max_samples': 120}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from core.config import MqttConfig
from edge.schema import (
    CONTENT_TYPE_JSON,
    ConfigReport,
    DesiredConfig,
    config_desired_topic,
    config_reported_topic,
)
from forewarn.errors import ConfigError, ForewarnError

__all__ = ["SETTABLE_KEYS", "check_changes", "merge_desired", "parse_changes", "publish_desired"]

#: the keys ``config set`` accepts: every field of the desired config but its revision
SETTABLE_KEYS = tuple(name for name in DesiredConfig.model_fields if name != "revision")


def parse_changes(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as a dict; ``none`` (or nothing) after ``=`` removes the key.
    :class:`ConfigError` names an unknown key or a value that is not a number."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"{pair!r}: expected key=value")
        if key not in SETTABLE_KEYS:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(SETTABLE_KEYS)}")
        if text.strip().lower() in ("", "none", "null"):
            changes[key] = None
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}={text}: the value must be a number")
        changes[key] = value
    return changes


def check_changes(changes: dict[str, object]) -> dict[str, Any]:
    """Changes given as a mapping (the console's API): known keys, numbers or None (remove).

    >>> check_changes({"batch_max_samples": 120, "status_interval_s": None})
    {'batch_max_samples': 120, 'status_interval_s': None}
    """
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in SETTABLE_KEYS:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(SETTABLE_KEYS)}")
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise ConfigError(f"{key}: the value must be a number (or null to remove it)")
        checked[key] = value
    if not checked:
        raise ConfigError("no config key to change")
    return checked


def merge_desired(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """The next desired config: ``current`` with ``changes`` (None removes), revision + 1."""
    merged = {k: v for k, v in (current or {}).items() if k != "revision"}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    revision = int((current or {}).get("revision", 0)) + 1
    desired = {"revision": revision, **merged}
    try:
        DesiredConfig.model_validate(desired)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {err['msg']}") from exc
    return desired


def _client(mqtt: MqttConfig) -> aiomqtt.Client:
    protocol = (aiomqtt.ProtocolVersion.V311 if mqtt.protocol == "3.1.1"
                else aiomqtt.ProtocolVersion.V5)
    return aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                          identifier=f"{mqtt.client_id}-config-{uuid.uuid4().hex[:6]}",
                          protocol=protocol, timeout=10.0)


async def publish_desired(mqtt: MqttConfig, tenant: str, device_id: str,
                          changes: dict[str, Any], *, retained_wait_s: float = 1.0,
                          report_wait_s: float = 0.0,
                          ) -> tuple[dict[str, Any], ConfigReport | None]:
    """Merge ``changes`` into the device's retained desired config and publish it; with
    ``report_wait_s``, wait that long for the device's report of the new revision.

    Returns the published config and the report (None when none came). Raises
    :class:`ForewarnError` when the broker cannot be reached or refuses.
    """
    desired_topic = config_desired_topic(tenant, device_id)
    reported_topic = config_reported_topic(tenant, device_id)
    try:
        async with _client(mqtt) as client:
            await client.subscribe(desired_topic, qos=1)
            await client.subscribe(reported_topic, qos=1)
            current = await _retained(client, desired_topic, retained_wait_s)
            desired = merge_desired(current, changes)
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ContentType = CONTENT_TYPE_JSON
            await client.publish(desired_topic, json.dumps(desired).encode(), qos=1,
                                 retain=True, properties=properties)
            report = None
            if report_wait_s > 0:
                report = await _report(client, reported_topic, desired["revision"],
                                       report_wait_s)
    except aiomqtt.MqttError as exc:
        raise ForewarnError(f"broker {mqtt.host}:{mqtt.port}: {exc}") from exc
    return desired, report


async def _retained(client: aiomqtt.Client, topic: str, wait_s: float) -> dict[str, Any] | None:
    """The retained desired config, which the broker sends right after the subscription
    (nothing comes when there is none, hence the short wait)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            async for message in client.messages:
                if message.topic.matches(topic) and isinstance(message.payload, bytes):
                    if not message.payload:
                        return None
                    try:
                        current: dict[str, Any] = DesiredConfig.model_validate_json(
                            message.payload).model_dump(exclude_none=True)
                    except ValidationError:
                        return None  # a broken retained config is replaced, not merged
                    return current
    return None


async def _report(client: aiomqtt.Client, topic: str, revision: int,
                  wait_s: float) -> ConfigReport | None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            async for message in client.messages:
                if not message.topic.matches(topic) or not isinstance(message.payload, bytes):
                    continue
                try:
                    report = ConfigReport.model_validate_json(message.payload)
                except ValidationError:
                    continue
                if report.revision == revision:
                    return report
    return None
