"""JSON readings: one object per reading, or an array of them, per message.

Fields are the configured keys (dotted paths into nested objects), or every numeric top-level
key but the time; ``null`` is a missing reading (NaN); ``true``/``false`` and text are not
numbers. Keys the mapping does not use are ignored or, with ``unknown_keys = "dead-letter"``,
refuse the message.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from core.decode import MAX_NESTING, MAX_PAYLOAD_BYTES
from core.errors import DecodeError
from core.json_numbers import nesting_depth
from core.mapping.config import MappingConfig
from core.mapping.json_scan import scan_readings
from core.mapping.times import AUTO_MS_ABOVE as _AUTO_MS_ABOVE
from core.mapping.times import epoch_seconds
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH, MAX_TIMESTAMP_S

__all__ = ["Readings", "decode_json", "epoch_column", "layout_fields", "one_reading"]

#: (device from the payload or None, field names, times, rows of values)
Readings = tuple[str | None, tuple[str, ...], np.ndarray, np.ndarray]

_MISMATCH = "mapping_mismatch"


def _lookup(reading: dict[str, Any], path: str) -> Any:
    if path in reading:
        return reading[path]
    node: Any = reading
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


_ABSENT = object()


def _number(mapping: MappingConfig, key: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: field {key!r} is "
                          f"{type(value).__name__} {str(value)[:40]!r}, not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: field {key!r} is not finite")
    return number


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_json(mapping: MappingConfig, payload: bytes, arrival: float, *,
                fast: bool = True) -> Readings:
    """The readings of one message; DecodeError with the reason when it does not fit.

    ``fast=False`` skips the fast path for the usual message (the tests compare the two)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    if (fast and len(payload) >= _SCAN_FROM_BYTES and mapping.fields is None
            and mapping.device_key is None):
        scanned = _scanned(mapping, payload, arrival)
        if scanned is not None:
            return scanned
    if nesting_depth(np.frombuffer(payload, dtype=np.uint8), MAX_NESTING) > MAX_NESTING:
        raise DecodeError("too_deep", f"JSON nested more than {MAX_NESTING} levels deep")
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_encoding", f"not JSON: {exc}") from exc
    readings = document if isinstance(document, list) else [document]
    if not readings or len(readings) > MAX_SAMPLES_PER_BATCH:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {len(readings)} readings "
                          f"(1 to {MAX_SAMPLES_PER_BATCH})")
    if fast and mapping.fields is None and mapping.device_key is None:
        quick = _all_numeric(mapping, readings, arrival)
        if quick is not None:
            return quick
    keys = mapping.fields
    names: dict[str, int] = {}  # forewarn field name → column, in first-seen order
    rows: list[dict[int, float]] = []
    times: list[float] = []
    device: str | None = None
    for reading in readings:
        if not isinstance(reading, dict):
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: a reading is "
                              f"{type(reading).__name__}, not a JSON object")
        times.append(_time(mapping, reading, arrival))
        if mapping.device_key is not None:
            device = _device(mapping, reading, device)
        used = {mapping.time_key, mapping.device_key}
        row: dict[int, float] = {}
        if keys is None:
            for key, value in reading.items():
                if key in used:
                    continue
                if _is_number(value) or value is None:
                    row[names.setdefault(mapping.field_name(key), len(names))] = _number(
                        mapping, key, value)
                elif mapping.unknown_keys == "dead-letter":
                    raise DecodeError(_MISMATCH, f"mapping {mapping.name}: key {key!r} is not "
                                      "a number (unknown_keys = \"dead-letter\")")
        else:
            for key in keys:
                value = _lookup(reading, key)
                if value is _ABSENT:
                    continue
                row[names.setdefault(mapping.field_name(key), len(names))] = _number(
                    mapping, key, value)
            if mapping.unknown_keys == "dead-letter":
                known = {k.split(".", 1)[0] for k in keys} | {k for k in keys} | used
                extra = [k for k in reading if k not in known]
                if extra:
                    raise DecodeError(_MISMATCH, f"mapping {mapping.name}: unknown key "
                                      f"{extra[0]!r} (unknown_keys = \"dead-letter\")")
        if len(names) > MAX_FIELDS:
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: more than {MAX_FIELDS} "
                              "fields")
        rows.append(row)
    if not names:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no field in the message")
    values = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        for j, number in row.items():
            values[i, j] = number
    return device, tuple(names), np.asarray(times, dtype=np.float64), values


_NUMERIC = frozenset({int, float, type(None)})
#: a message this long or longer is read by the scan (a shorter one, a few readings, reads
#: faster through orjson: the scan's call costs ~20 µs, and saves ~1 µs per reading)
_SCAN_FROM_BYTES = 2048
#: (mapping, keys, which hold numbers) → the mapping (which keeps its id unique while here)
#: and (field names, their columns, the time's column)
_LAYOUTS: dict[tuple[int, tuple[str, ...], tuple[bool, ...]], tuple[
    MappingConfig, tuple[tuple[str, ...], NDArray[np.int64], int] | None]] = {}
_KEEP_LAYOUTS = 4096


def layout_fields(mapping: MappingConfig, keys: tuple[str, ...], numeric: tuple[bool, ...]
                  ) -> tuple[tuple[str, ...], NDArray[np.int64], int] | None:
    """How readings of this layout (their keys, and which hold a number or null) become
    fields under ``mapping``, as :func:`_all_numeric` takes them: (field names, the columns
    of their values, the time's column or -1 for the arrival time); None when
    :func:`_all_numeric` would not take them (no time, a key that is no field name left to
    the caller, an unknown key under ``unknown_keys = "dead-letter"``)."""
    cache_key = (id(mapping), keys, numeric)
    known = _LAYOUTS.get(cache_key)
    if known is not None and known[0] is mapping:
        return known[1]
    found: tuple[tuple[str, ...], NDArray[np.int64], int] | None = None
    time_key = mapping.time_key
    if mapping.time_unit in ("auto", "s") and (time_key is None or "." not in time_key) and (
            mapping.unknown_keys == "ignore" or all(numeric)):
        columns = [j for j, number in enumerate(numeric) if number]
        time_column = -1
        if time_key is not None:
            time_column = next((j for j in columns if keys[j] == time_key), -2)
            columns = [j for j in columns if j != time_column]
        if time_column != -2 and 0 < len(columns) <= MAX_FIELDS:
            names = tuple(mapping.field_name(keys[j]) for j in columns)
            found = names, np.array(columns, dtype=np.int64), time_column
    if len(_LAYOUTS) >= _KEEP_LAYOUTS:  # bounded: a fleet of oddities
        _LAYOUTS.clear()
    _LAYOUTS[cache_key] = (mapping, found)
    return found


def epoch_column(mapping: MappingConfig, ts: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """The times of a layout's time column as epoch seconds, as :func:`_all_numeric` reads
    them; None when one is missing (null) or out of range."""
    if mapping.time_unit == "auto":
        ts = np.where(ts > _AUTO_MS_ABOVE, ts / 1e3, ts)
    if not ((ts >= 0.0) & (ts <= MAX_TIMESTAMP_S)).all():  # NaN (null) fails too
        return None
    return ts


def _scanned(mapping: MappingConfig, payload: bytes, arrival: float) -> Readings | None:
    """:func:`_all_numeric`'s readings read by :mod:`core.mapping.json_scan`, no Python object
    per reading; None for anything it does not take (the caller then goes the usual way)."""
    scan = scan_readings((payload,))
    n = int(scan.count[0])
    if not 0 < n <= MAX_SAMPLES_PER_BATCH:
        return None
    lay = int(scan.layout[0])
    taken = layout_fields(mapping, scan.keys(lay), scan.numeric(lay))
    if taken is None:
        return None
    names, columns, time_column = taken
    rows = scan.values[:n]
    if time_column < 0:
        t = np.full(n, float(arrival))
    else:
        epoch = epoch_column(mapping, rows[:, time_column].copy())
        if epoch is None:
            return None
        t = epoch
    return None, names, t, rows[:, columns]


def _all_numeric(mapping: MappingConfig, readings: list[Any], arrival: float
                 ) -> Readings | None:
    """The usual message fast: every reading an object with the same numeric keys in the same
    order, an epoch time. None for anything else, which the general path decodes (or words
    the error of). Checked against it in tests/unit/test_mapping.py."""
    time_key = mapping.time_key
    if mapping.time_unit not in ("auto", "s") or (time_key is not None and "." in time_key):
        return None
    check_unknown = mapping.unknown_keys == "dead-letter"
    keys: tuple[str, ...] | None = None
    rows: list[list[Any]] = []
    times: list[float] = []
    for reading in readings:
        if type(reading) is not dict:
            return None
        numbers = {k: v for k, v in reading.items() if type(v) in _NUMERIC}
        if time_key is None:
            seconds = arrival
        else:
            ts = numbers.pop(time_key, None)
            if ts is None:
                return None
            seconds = ts / 1e3 if ts > _AUTO_MS_ABOVE and mapping.time_unit == "auto" else ts
            if not 0.0 <= seconds <= MAX_TIMESTAMP_S:
                return None
        if check_unknown and len(numbers) + (time_key is not None) != len(reading):
            return None
        if keys is None:
            keys = tuple(numbers)
        elif tuple(numbers) != keys:
            return None
        rows.append(list(numbers.values()))
        times.append(float(seconds))
    if not keys or len(keys) > MAX_FIELDS:
        return None
    try:
        values = np.array(rows, dtype=np.float64)  # None → NaN, a missing reading
    except OverflowError:  # an integer beyond float64
        return None
    if np.isinf(values).any():
        return None
    names = tuple(mapping.rename.get(k, k) for k in keys) if mapping.rename else keys
    return None, names, np.array(times, dtype=np.float64), values


def one_reading(mapping: MappingConfig, payload: bytes
                ) -> tuple[tuple[str, ...], float, list[Any]] | None:
    """One JSON object of numbers as (field names, epoch seconds, its values), or None.

    The per-message cost of :func:`decode_json` for the commonest mapped message, one reading
    per message, with no arrays: the caller coalesces many into one batch. It takes only what
    :func:`_all_numeric` takes (``mapping`` with no field list, device key, scale or offset,
    an epoch time key; checked by the caller), one flat object, and gives the same names,
    time and values; anything else is None
    and goes the general way, which also words the error. orjson reads no infinity (it
    refuses 1e400) and gives integers beyond 64 bits as floats, so every value is finite.
    """
    if len(payload) > MAX_PAYLOAD_BYTES or b"[" in payload or payload.count(b"{") > 1:
        return None  # nested objects and arrays go the general way (nesting depth, paths)
    try:
        reading = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(reading) is not dict:
        return None
    numbers = {k: v for k, v in reading.items() if type(v) in _NUMERIC}
    ts = numbers.pop(mapping.time_key, None)  # a key: the caller checked
    if ts is None or not 0 < len(numbers) <= MAX_FIELDS:
        return None
    if ts > _AUTO_MS_ABOVE and mapping.time_unit == "auto":
        ts = ts / 1e3
    if not 0.0 <= ts <= MAX_TIMESTAMP_S or (
            mapping.unknown_keys == "dead-letter" and len(numbers) + 1 != len(reading)):
        return None
    keys = tuple(numbers)
    names = tuple(mapping.rename.get(k, k) for k in keys) if mapping.rename else keys
    return names, float(ts), list(numbers.values())


def _time(mapping: MappingConfig, reading: dict[str, Any], arrival: float) -> float:
    if mapping.time_key is None:
        return arrival
    value = _lookup(reading, mapping.time_key)
    if value is _ABSENT:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no time key "
                          f"{mapping.time_key!r} in the reading")
    try:
        return epoch_seconds(value, mapping.time_unit)
    except ValueError as exc:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {exc}") from None


def _device(mapping: MappingConfig, reading: dict[str, Any], before: str | None) -> str:
    assert mapping.device_key is not None
    value = _lookup(reading, mapping.device_key)
    if not isinstance(value, str):
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no device id under "
                          f"{mapping.device_key!r}")
    if before is not None and value != before:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: readings of two devices "
                          f"({before!r}, {value!r}) in one message")
    return value
