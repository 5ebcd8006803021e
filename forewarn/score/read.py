"""Reading an exported telemetry file: CSV (any delimiter) or Parquet, one or many devices.

The delimiter is detected from the first lines (or given), the time column found by its name
or by values that read as timestamps (or given); times may be ISO 8601 (a zone or none, which
counts as UTC) or epoch seconds, milliseconds, microseconds or nanoseconds (told apart by the
first value's size). Every numeric column other than the time and device columns is a field
unless ``fields`` names them (numbers with a decimal comma count, in files not separated by
commas; columns named like labels, such as ``anomaly`` or
``changepoint``, are left out). Missing values are NaN; rows out of time order are put in order
for the detectors (each device's rows keep their numbers in the file, for the output).

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     path = Path(d, "rig.csv")
...     _ = path.write_text("time;flow;pressure\\n2024-05-01T00:00:00Z;1.5;3\\n"
...                         "2024-05-01T00:00:01Z;;3.1\\n")
...     table = read_telemetry(path, ReadOptions())
>>> table.separator, table.time_column, table.fields, table.n_rows
(';', 'time', ('flow', 'pressure'), 2)
>>> table.devices[0].t.tolist(), table.devices[0].values[1].tolist()
([1714521600.0, 1714521601.0], [nan, 3.1])
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from numpy.typing import NDArray

from forewarn.score.errors import ScoreError

__all__ = [
    "LABEL_NAMES",
    "PARQUET_SUFFIXES",
    "SINGLE_DEVICE",
    "DeviceSeries",
    "ReadOptions",
    "Telemetry",
    "read_telemetry",
]

#: file name endings read as Parquet (anything else is read as delimited text)
PARQUET_SUFFIXES = (".parquet", ".pq")
_SEPARATORS = (",", ";", "\t", "|", " ")
#: column names taken for the time column, best first (compared in lower case)
_TIME_NAMES = ("timestamp", "time", "datetime", "date_time", "date", "ts", "t", "epoch",
               "time_s", "timestamp_ms", "time_ms", "_time")
_TIME_HINT = re.compile(r"time|date|epoch", re.IGNORECASE)
_SAMPLE_BYTES = 1 << 16
#: the device id of a file without a device column
SINGLE_DEVICE = "device"
#: numeric columns named like this are labels of a recording, not sensors: never scored
#: unless ``fields`` names them (compared in lower case)
LABEL_NAMES = frozenset({"anomaly", "anomalies", "is_anomaly", "label", "labels", "changepoint",
                         "change_point", "fault", "is_fault", "target", "ground_truth"})


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What the user told ``forewarn score`` about the file (None: detect it)."""

    separator: str | None = None
    time_column: str | None = None
    fields: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    device_column: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class DeviceSeries:
    """One device's rows in time order: their numbers in the file, times and field values."""

    device_id: str
    rows: NDArray[np.int64]
    t: NDArray[np.float64]
    values: NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Telemetry:
    """A file read for scoring.

    ``time_text`` and ``device_text`` are the input's columns as read (Arrow arrays, one entry
    per row in file order), written back unchanged into the output.
    """

    path: Path
    separator: str | None
    time_column: str
    time_text: Any
    fields: tuple[str, ...]
    device_column: str | None
    device_text: Any
    devices: tuple[DeviceSeries, ...]
    n_rows: int
    #: rows whose time is earlier than the row before them (of the same device)
    out_of_order: int
    #: numeric columns left out because their names say they are labels
    labels: tuple[str, ...] = ()


def read_telemetry(path: Path, options: ReadOptions) -> Telemetry:
    """Read ``path`` (CSV or Parquet) into per-device series; :class:`ScoreError` if it cannot."""
    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        table, separator = _read_parquet(path), None
        time_column = _time_column_of_table(path, table, options)
    else:
        header, lines, separator = _sniff(path, options.separator)
        time_column = _time_column_of_text(path, header, lines, separator, options)
        table = _read_csv(path, separator, time_column, options.device_column)
        if separator != ",":
            table = _decimal_commas(table, {time_column, options.device_column})
    names = list(table.column_names)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ScoreError(f"{path}: column names repeat: {', '.join(dupes)}")
    if options.device_column is not None and options.device_column not in names:
        raise ScoreError(f"{path}: no device column {options.device_column!r} "
                         f"(columns: {', '.join(names)})")
    fields, labels = _fields(path, table, time_column, options)
    if table.num_rows == 0:
        raise ScoreError(f"{path}: no rows of data")
    time_col = table.column(time_column)
    t = _seconds(path, time_column, time_col)
    values = np.empty((table.num_rows, len(fields)), dtype=np.float64)
    for j, name in enumerate(fields):
        col = pc.cast(table.column(name), pa.float64())
        values[:, j] = col.to_numpy(zero_copy_only=False)
    values[~np.isfinite(values)] = np.nan
    device_text = None
    if options.device_column is not None:
        device_text = pc.cast(table.column(options.device_column), pa.string())
        devices, out_of_order = _split(device_text, t, values)
    else:
        devices, out_of_order = _split(None, t, values)
    return Telemetry(path, separator, time_column, time_col, fields, options.device_column,
                     device_text, devices, table.num_rows, out_of_order, labels)


# -- text files ------------------------------------------------------------------------------

def _sniff(path: Path, separator: str | None) -> tuple[list[str], list[list[str]], str]:
    """Header, first data lines and the delimiter that splits them all alike."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(_SAMPLE_BYTES)
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if b"\0" in raw:
        raise ScoreError(f"{path}: not a text file (give Parquet files a .parquet name)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # a cut in the middle of a multi-byte character at the end of the sample is fine
        try:
            text = raw[:-4].decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ScoreError(f"{path}: not UTF-8 text") from exc
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(raw) == _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut
    if not lines:
        raise ScoreError(f"{path}: empty file")
    lines = lines[:50]
    candidates = (separator,) if separator is not None else _SEPARATORS
    best: tuple[int, str] | None = None
    for sep in candidates:
        rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep))
        width = len(rows[0])
        if width < 2 or any(len(r) != width for r in rows[1:]):
            continue
        if best is None or width > best[0]:
            best = (width, sep)
    if best is None:
        if separator is not None:
            raise ScoreError(f"{path}: {separator!r} does not split the lines into the same "
                             "number of columns (two at least)")
        raise ScoreError(f"{path}: cannot tell the delimiter (tried , ; tab | space); "
                         "give it with --sep")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=best[1]))
    return [h.strip() for h in rows[0]], rows[1:], best[1]


def _time_column_of_text(path: Path, header: list[str], lines: list[list[str]], sep: str,
                         options: ReadOptions) -> str:
    if options.time_column is not None:
        if options.time_column not in header:
            raise ScoreError(f"{path}: no time column {options.time_column!r} "
                             f"(columns: {', '.join(header)})")
        return options.time_column
    by_name = _time_by_name(header)
    if by_name is not None:
        return by_name
    for j, name in enumerate(header):
        sample = [r[j].strip() for r in lines if j < len(r) and r[j].strip()]
        if sample and all(_looks_like_date(v) for v in sample):
            return name
    raise ScoreError(f"{path}: no time column found (columns: {', '.join(header)}); "
                     "name it with --time-column")


def _time_by_name(names: Sequence[str]) -> str | None:
    lower = {n.lower(): n for n in names}
    for wanted in _TIME_NAMES:
        if wanted in lower:
            return lower[wanted]
    return next((n for n in names if _TIME_HINT.search(n)), None)


def _looks_like_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _read_csv(path: Path, sep: str, time_column: str, device_column: str | None) -> Any:
    types = {time_column: pa.string()}
    if device_column is not None:
        types[device_column] = pa.string()
    try:
        return pa_csv.read_csv(
            path, parse_options=pa_csv.ParseOptions(delimiter=sep),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=True,
                null_values=["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none",
                             "-", "?"]))
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScoreError(f"{path}: cannot read as delimited text ({sep!r}): {first}") from exc


def _decimal_commas(table: Any, keep: set[str | None]) -> Any:
    """Text columns that are numbers written with a decimal comma (``1,5``), as numbers."""
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if name in keep or not pa.types.is_string(column.type):
            continue
        try:
            numbers = pc.cast(pc.replace_substring(column, ",", "."), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        table = table.set_column(i, name, numbers)
    return table


# -- Parquet ---------------------------------------------------------------------------------

def _read_parquet(path: Path) -> Any:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScoreError(f"{path}: cannot read as Parquet: {first}") from exc


def _time_column_of_table(path: Path, table: Any, options: ReadOptions) -> str:
    names = list(table.column_names)
    if options.time_column is not None:
        if options.time_column not in names:
            raise ScoreError(f"{path}: no time column {options.time_column!r} "
                             f"(columns: {', '.join(names)})")
        return options.time_column
    stamped = [n for n in names if pa.types.is_timestamp(table.schema.field(n).type)
               or pa.types.is_date(table.schema.field(n).type)]
    found = _time_by_name(names) or (stamped[0] if stamped else None)
    if found is None:
        raise ScoreError(f"{path}: no time column found (columns: {', '.join(names)}); "
                         "name it with --time-column")
    return found


# -- columns and times -----------------------------------------------------------------------

def _numeric(kind: Any) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_decimal(kind))


def _fields(path: Path, table: Any, time_column: str, options: ReadOptions,
            ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The columns to score, and the label columns left out (unless ``fields`` names them)."""
    names = list(table.column_names)
    if options.fields is not None:
        missing = [f for f in options.fields if f not in names]
        if missing:
            raise ScoreError(f"{path}: no column {', '.join(map(repr, missing))} "
                             f"(columns: {', '.join(names)})")
        for name in options.fields:
            kind = table.schema.field(name).type
            if not (_numeric(kind) or pa.types.is_null(kind)):
                raise ScoreError(f"{path}: column {name!r} is not numeric ({kind})")
        chosen = [f for f in options.fields if f not in options.exclude]
    else:
        skip = {time_column, options.device_column, *options.exclude}
        chosen = [n for n in names if n not in skip and _numeric(table.schema.field(n).type)]
    labels = tuple(n for n in chosen if options.fields is None and n.lower() in LABEL_NAMES)
    chosen = [n for n in chosen if n not in labels]
    if not chosen:
        raise ScoreError(f"{path}: no numeric column to score (columns: {', '.join(names)})")
    return tuple(chosen), labels


def _seconds(path: Path, name: str, column: Any) -> NDArray[np.float64]:
    """Epoch seconds of every row of the time column."""
    if column.null_count:
        row = int(pc.index(pc.is_null(column), True).as_py())
        raise ScoreError(f"{path}: row {row + 1} has no time in column {name!r}")
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        stamps = pc.cast(column, pa.timestamp("ns", tz=getattr(kind, "tz", None)))
        return _ns_to_s(stamps)
    if _numeric(kind):
        return _epoch(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    try:
        return _epoch(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return _ns_to_s(pc.cast(column, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return _mixed_iso(path, name, column)


def _ns_to_s(stamps: Any) -> NDArray[np.float64]:
    ns = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False)
    return np.asarray(ns // 1000, dtype=np.float64) / 1e6


def _epoch(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    """Seconds from epoch numbers: the first value's size says s, ms, µs or ns."""
    first = abs(float(raw[0]))
    scale = 1e9 if first > 1e17 else 1e6 if first > 1e14 else 1e3 if first > 1e11 else 1.0
    out: NDArray[np.float64] = np.asarray(raw, dtype=np.float64) / scale
    return out


def _mixed_iso(path: Path, name: str, column: Any) -> NDArray[np.float64]:
    """Row by row, for ISO stamps Arrow cannot cast at once (mixed zones, odd forms)."""
    out = np.empty(len(column), dtype=np.float64)
    for i, text in enumerate(column.to_pylist()):
        try:
            ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ScoreError(f"{path}: row {i + 1}: {text!r} in column {name!r} is neither a "
                             "timestamp (ISO 8601) nor an epoch number") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        out[i] = ts.timestamp()
    return out


def _split(device_text: Any, t: NDArray[np.float64], values: NDArray[np.float64],
           ) -> tuple[tuple[DeviceSeries, ...], int]:
    """Per-device series in time order, and how many rows were out of order."""
    if not np.all(np.isfinite(t)):
        raise ScoreError(f"row {int(np.argmin(np.isfinite(t))) + 1} has a time that is "
                         "not a finite number")
    if device_text is None:
        groups: list[tuple[str, NDArray[np.int64]]] = [(SINGLE_DEVICE, np.arange(t.shape[0]))]
    else:
        encoded = pc.dictionary_encode(pc.fill_null(device_text, "")).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        names = encoded.dictionary.to_pylist()
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        groups = [(str(names[c]) or "(none)", order[bounds[c]:bounds[c + 1]].astype(np.int64))
                  for c in range(len(names))]
    out: list[DeviceSeries] = []
    late = 0
    for device_id, rows in groups:
        tt = t[rows]
        steps = np.diff(tt)
        if np.any(steps < 0):
            late += int(np.count_nonzero(steps < 0))
            order = np.argsort(tt, kind="stable")
            rows, tt = rows[order], tt[order]
        out.append(DeviceSeries(device_id, rows, tt, values[rows]))
    return tuple(out), late
