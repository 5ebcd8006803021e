"""CSV lines: one reading per line, the columns named by ``columns`` or by a header line.

Empty cells are missing readings (NaN); every other cell of a field column must be a number.
The time column is ``time_key`` (or the arrival time without one), the device the topic's
``+device`` or the column ``device_key`` names. Columns not used are ignored or, with
``unknown_keys = "dead-letter"``, refuse the message (only when ``fields`` lists the fields).

>>> from core.mapping.config import MappingConfig
>>> m = MappingConfig(name="c", topic="plant/+device/csv", tenant="acme", format="csv",
...                   columns=["ts", "temp", "rpm"], time_key="ts")
>>> decode_csv(m, b"1700000000,21.5,900\\n1700000010,,905\\n", 0.0)[1:3]
(('temp', 'rpm'), array([1.70000000e+09, 1.70000001e+09]))
"""

from __future__ import annotations

import csv
import math

import numpy as np

from core.decode import MAX_PAYLOAD_BYTES
from core.errors import DecodeError
from core.mapping.config import MappingConfig
from core.mapping.json_format import Readings
from core.mapping.times import epoch_seconds
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH

__all__ = ["decode_csv"]

_MISMATCH = "mapping_mismatch"


def _time_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # ISO 8601, or an error epoch_seconds words


def decode_csv(mapping: MappingConfig, payload: bytes, arrival: float) -> Readings:
    """The readings of one message of CSV lines; DecodeError when it does not fit."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_encoding", f"not UTF-8: {exc}") from exc
    try:
        rows = [row for row in csv.reader(text.splitlines()) if row and any(row)]
    except csv.Error as exc:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: not CSV: {exc}") from exc
    header = list(mapping.columns) if mapping.columns is not None else (rows.pop(0) if rows
                                                                        else [])
    if not rows or len(rows) > MAX_SAMPLES_PER_BATCH:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {len(rows)} lines "
                          f"(1 to {MAX_SAMPLES_PER_BATCH})")
    header = [h.strip() for h in header]
    used = {mapping.time_key, mapping.device_key}
    if mapping.fields is not None:
        missing = [f for f in mapping.fields if f not in header]
        if missing:
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no column {missing[0]!r}")
        if mapping.unknown_keys == "dead-letter":
            extra = [h for h in header if h not in mapping.fields and h not in used]
            if extra:
                raise DecodeError(_MISMATCH, f"mapping {mapping.name}: unknown column "
                                  f"{extra[0]!r} (unknown_keys = \"dead-letter\")")
        columns = [header.index(f) for f in mapping.fields]
    else:
        columns = [i for i, h in enumerate(header) if h not in used]
    if not columns or len(columns) > MAX_FIELDS:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {len(columns)} field columns "
                          f"(1 to {MAX_FIELDS})")
    time_col = _column(mapping, header, mapping.time_key)
    device_col = _column(mapping, header, mapping.device_key)
    values = np.full((len(rows), len(columns)), np.nan)
    times = np.empty(len(rows))
    device: str | None = None
    for i, row in enumerate(rows):
        where = f"mapping {mapping.name}: line {i + 1}"
        if len(row) != len(header):
            raise DecodeError(_MISMATCH, f"{where}: {len(row)} cells, {len(header)} columns")
        for j, col in enumerate(columns):
            cell = row[col].strip()
            if cell:
                try:
                    number = float(cell)
                except ValueError:
                    raise DecodeError(_MISMATCH, f"{where}: {header[col]!r} = {cell[:40]!r} "
                                      "is not a number") from None
                if not math.isfinite(number):
                    raise DecodeError(_MISMATCH, f"{where}: {header[col]!r} is not finite")
                values[i, j] = number
        if time_col is None:
            times[i] = arrival
        else:
            try:
                times[i] = epoch_seconds(_time_value(row[time_col].strip()), mapping.time_unit)
            except ValueError as exc:
                raise DecodeError(_MISMATCH, f"{where}: {exc}") from None
        if device_col is not None:
            found = row[device_col].strip()
            if device is not None and found != device:
                raise DecodeError(_MISMATCH, f"{where}: readings of two devices "
                                  f"({device!r}, {found!r}) in one message")
            device = found
    names = tuple(mapping.field_name(header[c]) for c in columns)
    return device, names, times, values


def _column(mapping: MappingConfig, header: list[str], name: str | None) -> int | None:
    if name is None:
        return None
    if name not in header:
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: no column {name!r}")
    return header.index(name)
