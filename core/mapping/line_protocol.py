"""InfluxDB line protocol (what Telegraf's MQTT output publishes): one reading per line.

``measurement,tag=value,… field=1.5,count=3i,ok=true 1700000000000000000``: numeric fields
(floats, ``i``/``u`` integers) are readings; booleans and strings are not numbers (ignored, or
refuse the message under ``unknown_keys = "dead-letter"``). The device comes from the topic's
``+device`` level or the tag ``device_key`` names; the time is nanoseconds unless ``time_unit``
says otherwise, and a line without one takes the arrival time.

>>> from core.mapping.config import MappingConfig
>>> m = MappingConfig(name="tg", topic="telegraf/+device", tenant="acme", format="influx")
>>> decode_line_protocol(m, b"hp,site=s1 temp=21.5,rpm=900i 1700000000000000000", 0.0)[1:3]
(('temp', 'rpm'), array([1.7e+09]))
"""

from __future__ import annotations

import math
import re

import numpy as np

from core.decode import MAX_PAYLOAD_BYTES
from core.errors import DecodeError
from core.mapping.config import MappingConfig
from core.mapping.json_format import Readings
from core.mapping.times import epoch_seconds
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH

__all__ = ["decode_line_protocol"]

_MISMATCH = "mapping_mismatch"
_UNESCAPE = re.compile(r"\\(.)")


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _field_value(text: str) -> float | None:
    """The number a field holds; None for a boolean or a string; ValueError when malformed."""
    if text.startswith('"'):
        return None
    if text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return None
    if text.endswith(("i", "u")):
        return float(int(text[:-1]))
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not finite")
    return number


def decode_line_protocol(mapping: MappingConfig, payload: bytes, arrival: float) -> Readings:
    """The readings of one message of line protocol; DecodeError when it does not fit."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_encoding", f"not UTF-8: {exc}") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines or len(lines) > MAX_SAMPLES_PER_BATCH:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {len(lines)} lines "
                          f"(1 to {MAX_SAMPLES_PER_BATCH})")
    wanted = set(mapping.fields) if mapping.fields is not None else None
    names: dict[str, int] = {}
    rows: list[dict[int, float]] = []
    times: list[float] = []
    device: str | None = None
    for line_no, line in enumerate(lines, start=1):
        where = f"mapping {mapping.name}: line {line_no}"
        sections = _split_unescaped(line.strip(), " ")
        if len(sections) not in (2, 3):
            raise DecodeError(_MISMATCH, f"{where}: not 'measurement,tags fields [time]'")
        head = _split_unescaped(sections[0], ",")
        tags: dict[str, str] = {}
        for tag in head[1:]:
            tag_key, _, tag_value = tag.partition("=")
            tags[_UNESCAPE.sub(r"\1", tag_key)] = _UNESCAPE.sub(r"\1", tag_value)
        if mapping.device_key is not None:
            found = tags.get(mapping.device_key)
            if found is None:
                raise DecodeError(_MISMATCH, f"{where}: no tag {mapping.device_key!r}")
            if device is not None and found != device:
                raise DecodeError(_MISMATCH, f"{where}: readings of two devices "
                                  f"({device!r}, {found!r}) in one message")
            device = found
        row: dict[int, float] = {}
        for pair in _split_unescaped(sections[1], ","):
            key, eq, raw = pair.partition("=")
            key = _UNESCAPE.sub(r"\1", key)
            if not eq:
                raise DecodeError(_MISMATCH, f"{where}: field {pair[:40]!r} has no value")
            try:
                value = _field_value(raw)
            except ValueError:
                raise DecodeError(_MISMATCH, f"{where}: field {key!r} = {raw[:40]!r} is not "
                                  "a number") from None
            if (value is None or (wanted is not None and key not in wanted)):
                if mapping.unknown_keys == "dead-letter":
                    raise DecodeError(_MISMATCH, f"{where}: unknown field {key!r} "
                                      "(unknown_keys = \"dead-letter\")")
                continue
            row[names.setdefault(mapping.field_name(key), len(names))] = value
        if len(names) > MAX_FIELDS:
            raise DecodeError(_MISMATCH, f"{where}: more than {MAX_FIELDS} fields")
        rows.append(row)
        if len(sections) == 3:
            unit = "ns" if mapping.time_unit in ("auto", "iso") else mapping.time_unit
            try:
                times.append(epoch_seconds(int(sections[2]), unit))
            except ValueError as exc:
                raise DecodeError(_MISMATCH, f"{where}: {exc}") from None
        else:
            times.append(arrival)
    if not names:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no numeric field in the message")
    values = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        for j, number in row.items():
            values[i, j] = number
    return device, tuple(names), np.asarray(times, dtype=np.float64), values
