"""What ``forewarn ingest sniff`` does: watch a broker for a while and propose mappings.

It subscribes (a clean, throw-away session: nothing is kept at the broker) to ``#`` or a given
filter, collects messages for ``seconds`` (or until ``max_messages``), and groups their topics
into patterns: levels that vary between topics become wildcards, the most varied one ``+device``.
For each pattern whose payloads are JSON objects (or arrays of them) or InfluxDB line protocol
it proposes an ``[[ingest.mapping]]``: the numeric keys, the time key (a key named like a time,
or holding epoch seconds, milliseconds or ISO 8601 text), and how many messages it saw. The
proposal is a starting point to check with ``forewarn ingest test``, not a verdict.

>>> print(propose([("acme/s1/hp-1/state", b'{"ts": 1700000000, "temp": 21.5, "mode": "x"}'),
...                ("acme/s2/hp-2/state", b'{"ts": 1700000010, "temp": 22.0, "mode": "y"}')],
...               tenant="acme")[0].toml())
# 2 messages on 2 topics, e.g. acme/s1/hp-1/state
[[ingest.mapping]]
name = "acme"
topic = "acme/+level2/+device/state"
format = "json"
tenant = "acme"
product = "generic"
time_key = "ts"
fields = ["temp"]
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiomqtt
import orjson

from core.config import MqttConfig
from edge.names import NAME_RE
from edge.schema import TOPIC_ROOT
from forewarn.errors import ForewarnError

__all__ = ["Proposal", "propose", "sniff"]

_TIME_NAMES = ("ts", "time", "timestamp", "t", "@timestamp", "datetime", "date", "epoch")
_LINE = re.compile(rb"^[^\s,#][^\s]*\s+\S+=\S+(\s+\d+)?$")


@dataclass
class Proposal:
    """A proposed mapping for one topic pattern."""

    topic: str
    format: str
    messages: int
    topics: int
    example: str
    tenant: str
    time_key: str | None = None
    fields: list[str] = field(default_factory=list)
    device_key: str | None = None
    #: what else a person should know (Sparkplug: the metrics its births named)
    note: str | None = None

    def toml(self) -> str:
        """The ``[[ingest.mapping]]`` block, with a comment on what was seen."""
        head = "/".join(self.topic.split("/")[:2 if self.format == "sparkplug" else 1])
        name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", head).strip("-") or "fleet"
        lines = [f"# {self.messages} messages on {self.topics} topics, e.g. {self.example}",
                 *([f"# {self.note}"] if self.note else []), "[[ingest.mapping]]",
                 f'name = "{name}"', f'topic = "{self.topic}"',
                 f'format = "{self.format}"', f'tenant = "{self.tenant}"',
                 'product = "generic"']
        if self.time_key is not None:
            lines.append(f'time_key = "{self.time_key}"')
        if self.device_key is not None:
            lines.append(f'device_key = "{self.device_key}"')
        if self.fields:
            lines.append("fields = [" + ", ".join(f'"{f}"' for f in self.fields) + "]")
        return "\n".join(lines)


def _pattern(topics: list[str]) -> str:
    """Levels that vary become wildcards; the one with the most values is ``+device``."""
    levels = [t.split("/") for t in topics]
    distinct = [len({lv[i] for lv in levels}) for i in range(len(levels[0]))]
    varying = [i for i, n in enumerate(distinct) if n > 1]
    device = max(varying, key=lambda i: (distinct[i], i)) if varying else None
    parts = []
    for i, value in enumerate(levels[0]):
        if i == device:
            parts.append("+device")
        elif i in varying:
            parts.append(f"+level{i + 1}")
        else:
            parts.append(value)
    return "/".join(parts)


def _is_time(key: str, value: Any) -> bool:
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 1e9 <= value <= 5e9 or 1e12 <= value <= 5e12 or key.lower() in _TIME_NAMES
    return False


def _json_proposal(topic: str, payloads: list[bytes]) -> tuple[str | None, list[str]] | None:
    numeric: Counter[str] = Counter()
    timeish: Counter[str] = Counter()
    readings = 0
    for payload in payloads:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        for reading in document if isinstance(document, list) else [document]:
            if not isinstance(reading, dict):
                return None
            readings += 1
            for key, value in reading.items():
                if _is_time(key, value):
                    timeish[key] += 1
                if isinstance(value, int | float) and not isinstance(value, bool):
                    numeric[key] += 1
    named = [k for k in timeish if k.lower() in _TIME_NAMES and timeish[k] == readings]
    time_key = named[0] if named else next(
        (k for k, n in timeish.most_common() if n == readings), None)
    fields = [k for k, n in numeric.items() if k != time_key and n * 10 >= readings * 9]
    return time_key, fields


def propose(messages: list[tuple[str, bytes]], tenant: str) -> list[Proposal]:
    """Mapping proposals for ``messages`` (topic, payload), most messages first."""
    groups: dict[tuple[int, str], list[tuple[str, bytes]]] = {}
    for topic, payload in messages:
        if topic.startswith((TOPIC_ROOT + "/", "$")):
            continue  # forewarn's own devices and the broker's statistics
        levels = topic.split("/")
        if levels[0] == "spBv1.0" and len(levels) > 2:  # Sparkplug B: one mapping per group
            groups.setdefault((0, "/".join(levels[:2])), []).append((topic, payload))
            continue
        groups.setdefault((len(levels), levels[0]), []).append((topic, payload))
    proposals = []
    for group in groups.values():
        topics = sorted({t for t, _ in group})
        payloads = [p for _, p in group]
        if topics[0].startswith("spBv1.0/"):
            proposals.append(_sparkplug_proposal(group, tenant))
            continue
        pattern = _pattern(topics)
        base = dict(topic=pattern, messages=len(group), topics=len(topics), example=topics[0],
                    tenant=tenant if NAME_RE.fullmatch(tenant) else "demo")
        as_json = _json_proposal(pattern, payloads)
        if as_json is not None and as_json[1]:
            proposals.append(Proposal(format="json", time_key=as_json[0], fields=as_json[1],
                                      **base))  # type: ignore[arg-type]
        elif all(_LINE.match(p.strip().splitlines()[0]) for p in payloads if p.strip()):
            proposal = Proposal(format="influx", **base)  # type: ignore[arg-type]
            if "+device" not in pattern:
                tags = Counter(tag.split(b"=")[0].decode(errors="replace")
                               for p in payloads
                               for tag in p.split(b" ")[0].split(b",")[1:])
                if tags:
                    proposal.device_key = next(
                        (t for t in ("host", "device", "serial", "id") if t in tags),
                        tags.most_common(1)[0][0])
            proposals.append(proposal)
    return sorted(proposals, key=lambda p: -p.messages)


def _sparkplug_proposal(group: list[tuple[str, bytes]], tenant: str) -> Proposal:
    """A Sparkplug B group: its births' metric names, noted (they are fields once renamed)."""
    topics = sorted({t for t, _ in group})
    metrics: dict[str, None] = {}
    for topic, payload in group:
        if topic.split("/")[2] in ("NBIRTH", "DBIRTH"):
            with contextlib.suppress(Exception):  # not a Sparkplug payload: nothing to note
                from pysparkplug._protobuf import Payload

                metrics.update((m.name, None) for m in Payload.FromString(payload).metrics
                               if m.name and m.name != "bdSeq")
    group_topic = "/".join(topics[0].split("/")[:2]) + "/#"
    proposal = Proposal(topic=group_topic, format="sparkplug", messages=len(group),
                        topics=len(topics), example=topics[0],
                        tenant=tenant if NAME_RE.fullmatch(tenant) else "demo")
    proposal.note = ("metrics in births: " + ", ".join(list(metrics)[:20]) if metrics else
                     "no birth seen: aliases resolve once the edge node sends one")
    return proposal


async def sniff(mqtt: MqttConfig, seconds: float, topic_filter: str = "#",
                max_messages: int = 10_000) -> list[tuple[str, bytes]]:
    """Messages seen on ``topic_filter`` within ``seconds`` (at most ``max_messages``)."""
    try:
        return await _sniff(mqtt, seconds, topic_filter, max_messages)
    except aiomqtt.MqttError as exc:
        raise ForewarnError(f"broker mqtt://{mqtt.host}:{mqtt.port}: {exc}") from exc


async def _sniff(mqtt: MqttConfig, seconds: float, topic_filter: str,
                 max_messages: int) -> list[tuple[str, bytes]]:
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username,
                              password=mqtt.password,
                              identifier=f"forewarn-sniff-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic_filter, qos=0)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    seen.append((message.topic.value, bytes(payload)))
                elif isinstance(payload, str):
                    seen.append((message.topic.value, payload.encode()))
                if len(seen) >= max_messages:
                    return

        with contextlib.suppress(TimeoutError):  # the time is up: what was seen is the answer
            await asyncio.wait_for(collect(), timeout=seconds)
    return seen
