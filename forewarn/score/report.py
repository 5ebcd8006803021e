"""What ``forewarn score`` writes: the scored CSV (one row per input row, in input order) and
the JSON summary.

The CSV has the device column (when the file had one), the input's time column as it was
read, ``anomaly_score`` (0–1, four decimals), ``alarm``, ``onset``, ``field`` (empty when no
alarm) and, with ``per_field``, ``score_<field>`` per field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from numpy.typing import NDArray

from forewarn.score.errors import ScoreError
from forewarn.score.read import PARQUET_SUFFIXES, Telemetry
from forewarn.score.run import DeviceResult

__all__ = ["CSV_SUFFIXES", "OUTPUT_SUFFIXES", "Scored", "summary", "write_csv", "write_json",
           "write_parquet", "write_scored"]

#: output suffixes written as CSV; read.PARQUET_SUFFIXES are written as Parquet
CSV_SUFFIXES = (".csv", ".txt")
OUTPUT_SUFFIXES = (*CSV_SUFFIXES, *PARQUET_SUFFIXES)

_CSV_SPECIAL = re.compile(r'[,"\r\n]')


@dataclass(slots=True, eq=False)
class Scored:
    """A scored file: what was read, each device's result, and how long scoring took."""

    telemetry: Telemetry
    results: list[DeviceResult]
    seconds: float
    #: warnings about the whole file (not one device)
    warnings: list[str] = field(default_factory=list)

    def column(self, name: str) -> NDArray[Any]:
        """``anomaly_score``, ``alarm``, ``onset`` or ``blame`` per row in file order."""
        n = self.telemetry.n_rows
        kinds = {"anomaly_score": np.float32, "alarm": np.int8, "onset": np.int8,
                 "blame": np.int16}
        out = np.zeros(n, dtype=kinds[name]) if name != "blame" else np.full(n, -1, np.int16)
        for series, result in zip(self.telemetry.devices, self.results, strict=True):
            value = result.anomaly_score if name == "anomaly_score" else getattr(result, name)
            out[series.rows] = value
        return out

    def field_scores(self) -> NDArray[np.float32]:
        """Level of every field, rows in file order."""
        out = np.zeros((self.telemetry.n_rows, len(self.telemetry.fields)), dtype=np.float32)
        for series, result in zip(self.telemetry.devices, self.results, strict=True):
            out[series.rows] = result.scores
        return out


def _plain(column: Any) -> bool:
    """Whether a column's text needs no quotes in a CSV (no comma, quote or line break)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return True
    special = pc.match_substring_regex(column, _CSV_SPECIAL.pattern)
    return not bool(pc.any(special).as_py())


def _quoted(name: str) -> str:
    return name if _CSV_SPECIAL.search(name) is None else '"' + name.replace('"', '""') + '"'


def _header_safe(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        while name in seen:
            name = f"{name}_"
        seen.add(name)
        out.append(name)
    return out


def _table(scored: Scored, per_field: bool) -> Any:
    """The scored rows as an Arrow table (the columns of the module doc)."""
    tele = scored.telemetry
    names: list[str] = []
    columns: list[Any] = []
    if tele.device_column is not None:
        names.append(tele.device_column)
        columns.append(tele.device_text)
    names.append(tele.time_column)
    columns.append(tele.time_text)
    names += ["anomaly_score", "alarm", "onset", "field"]
    columns.append(pa.array(np.round(scored.column("anomaly_score").astype(np.float64), 4)))
    columns.append(pa.array(scored.column("alarm")))
    columns.append(pa.array(scored.column("onset")))
    blame = scored.column("blame")
    columns.append(pa.DictionaryArray.from_arrays(
        pa.array(blame.astype(np.int32), mask=blame < 0),
        pa.array(list(tele.fields) or [""], type=pa.string())).dictionary_decode())
    if per_field:
        levels = np.round(scored.field_scores().astype(np.float64), 4)
        for j, name in enumerate(tele.fields):
            names.append(f"score_{name}")
            columns.append(pa.array(levels[:, j]))
    return pa.Table.from_arrays(columns, names=_header_safe(names))


def write_csv(scored: Scored, path: Path, per_field: bool = False) -> None:
    """Write the scored rows to ``path`` (a CSV, comma-separated)."""
    table = _table(scored, per_field)
    # Arrow quotes every string when asked for "needed": plain stamps and names stay bare
    plain = all(_plain(table.column(i)) for i in range(table.num_columns))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            fh.write((",".join(_quoted(n) for n in table.column_names) + "\n").encode())
            pa_csv.write_csv(table, fh, write_options=pa_csv.WriteOptions(
                include_header=False, quoting_style="none" if plain else "needed"))
    except (OSError, pa.ArrowException) as exc:
        raise ScoreError(f"{path}: cannot write: {exc}") from exc


def write_parquet(scored: Scored, path: Path, per_field: bool = False) -> None:
    """Write the scored rows to ``path`` as Parquet (the same columns as the CSV)."""
    table = _table(scored, per_field)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    except (OSError, pa.ArrowException) as exc:
        raise ScoreError(f"{path}: cannot write: {exc}") from exc


def write_scored(scored: Scored, path: Path, per_field: bool = False) -> None:
    """Write the scored rows as Parquet (``.parquet``, ``.pq``) or CSV (``.csv``, ``.txt``)."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        write_parquet(scored, path, per_field)
    elif suffix in CSV_SUFFIXES:
        write_csv(scored, path, per_field)
    else:
        raise ScoreError(f"{path}: cannot write {suffix or 'a file without a suffix'}: "
                         f"use {', '.join(OUTPUT_SUFFIXES)}")


def _time_label(tele: Telemetry, row: int) -> Any:
    value = tele.time_text[row].as_py()
    return value.isoformat() if hasattr(value, "isoformat") else value


def summary(scored: Scored) -> dict[str, Any]:
    """The JSON summary: rows, fields, devices, episodes (start, end, field, peak), run time."""
    tele = scored.telemetry
    episodes = []
    for series, result in zip(tele.devices, scored.results, strict=True):
        for ep in result.episodes:
            first, last = int(series.rows[ep.start_row]), int(series.rows[ep.end_row])
            item: dict[str, Any] = {
                "start": _time_label(tele, first), "end": _time_label(tele, last),
                "start_row": first + 1, "end_row": last + 1,
                "rows": ep.end_row - ep.start_row + 1, "field": ep.field,
                "peak_score": ep.peak_score,
            }
            if tele.device_column is not None:
                item = {"device": ep.device_id, **item}
            episodes.append(item)
    episodes.sort(key=lambda e: (e["start_row"]))
    alarm_rows = sum(int(r.alarm.sum()) for r in scored.results)
    return {
        "input": str(tele.path),
        "rows": tele.n_rows,
        "fields": list(tele.fields),
        "time_column": tele.time_column,
        "separator": tele.separator,
        "device_column": tele.device_column,
        "devices": {r.device_id: {"rows": int(r.alarm.shape[0]), "warmup_rows": r.warmup_rows,
                                  "hold_s": r.hold_s, "episodes": len(r.episodes)}
                    for r in scored.results},
        "rows_out_of_order": tele.out_of_order,
        "alarm_rows": alarm_rows,
        "episodes": episodes,
        "run_time_s": round(scored.seconds, 3),
        "rows_per_s": round(tele.n_rows / scored.seconds) if scored.seconds > 0 else None,
        "labels_not_scored": list(tele.labels),
        "warnings": [*(f"column {name!r} looks like a label: not scored (name it in --fields "
                       "to score it)" for name in tele.labels),
                     *scored.warnings,
                     *(w for r in scored.results for w in r.warnings)],
    }


def write_json(document: dict[str, Any], path: Path) -> None:
    """Write a summary (or a list of them) as indented JSON."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ScoreError(f"{path}: cannot write: {exc.strerror or exc}") from exc
