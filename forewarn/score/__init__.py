"""``forewarn score``: backtest an exported telemetry file, and show what forewarn would have
flagged, when, and which sensor.

::

    read.py     CSV (any delimiter) or Parquet → per-device series in time order
    run.py      each device through the service's detector and rule evaluator, in blocks
    report.py   the scored CSV (one row per input row, input order) and the JSON summary
    plot.py     the --plot picture

Errors: :class:`ScoreError` (a :class:`~forewarn.errors.ForewarnError`) for anything a user can
fix, one line naming the file and the problem.

>>> import tempfile
>>> import numpy as np
>>> from pathlib import Path
>>> rng = np.random.default_rng(2)
>>> load = rng.normal(0.0, 1.0, 3000)
>>> rows = "".join(f"{1.7e9 + 60 * i:.0f},{a:.4f},{b:.4f}\\n" for i, (a, b)
...                in enumerate(zip(load, 2 * load + rng.normal(0, 0.05, 3000))))
>>> with tempfile.TemporaryDirectory() as d:
...     _ = Path(d, "pump.csv").write_text("time,flow,power\\n" + rows)
...     scored = score_file(Path(d, "pump.csv"), ReadOptions(), ScoreOptions(warmup="1d"))
...     write_csv(scored, Path(d, "out.csv"))
...     lines = Path(d, "out.csv").read_text().splitlines()
>>> len(lines) - 1, lines[0], lines[1]
(3000, 'time,anomaly_score,alarm,onset,field', '1700000000,0,0,0,')
>>> summary(scored)["devices"]["device"]["warmup_rows"]
1440
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.detect import DetectorConfig
from edge.problems import problems
from forewarn.score.errors import ScoreError
from forewarn.score.read import PARQUET_SUFFIXES, ReadOptions, Telemetry, read_telemetry
from forewarn.score.report import Scored, summary, write_csv, write_json
from forewarn.score.run import ScoreOptions, score_device

__all__ = [
    "ReadOptions",
    "ScoreError",
    "ScoreOptions",
    "Scored",
    "input_files",
    "load_detector_config",
    "score_file",
    "score_telemetry",
    "summary",
    "write_csv",
    "write_json",
]

#: files of a folder that ``forewarn score`` reads
SUFFIXES = (".csv", ".tsv", ".txt", *PARQUET_SUFFIXES)


def input_files(path: Path) -> list[Path]:
    """``path`` itself, or the telemetry files of a folder (sorted)."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            raise ScoreError(f"{path}: no CSV or Parquet files in this folder")
        return found
    if not path.exists():
        raise ScoreError(f"{path}: no such file or folder")
    return [path]


def load_detector_config(path: Path | None) -> DetectorConfig:
    """The detector configuration: the defaults, with a TOML or JSON file's keys over them.

    The keys may sit at the top level or in a ``[detector]`` table (a service's forewarn.toml
    works as it is); ``profile = "nab_reference"`` starts from the earlier single-series NAB
    tuning (:meth:`DetectorConfig.nab_reference`) instead, to compare.

    >>> load_detector_config(None).regression_weight
    1.0
    """
    if path is None:
        return DetectorConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoreError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScoreError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'}: "
                         f"{exc}") from exc
    if not isinstance(data, dict):
        raise ScoreError(f"{path}: expected a table of detector settings")
    if isinstance(data.get("detector"), dict):
        data = data["detector"]
    profile = data.pop("profile", "default")
    try:
        if profile == "default":
            return DetectorConfig.model_validate(data)
        if profile == "nab_reference":
            return DetectorConfig.nab_reference(**data)
    except ValidationError as exc:
        raise ScoreError(f"{path}: {'; '.join(problems(exc))}") from exc
    raise ScoreError(f"{path}: profile {profile!r}: use 'default' or 'nab_reference'")


def score_telemetry(telemetry: Telemetry, options: ScoreOptions) -> Scored:
    """Score every device of a read file."""
    started = time.perf_counter()
    results = [score_device(series, telemetry.fields, options) for series in telemetry.devices]
    return Scored(telemetry, results, time.perf_counter() - started)


def score_file(path: Path, read: ReadOptions, options: ScoreOptions) -> Scored:
    """Read and score one file (the run time counts reading too)."""
    started = time.perf_counter()
    telemetry = read_telemetry(path, read)
    scored = score_telemetry(telemetry, options)
    scored.seconds = time.perf_counter() - started
    return scored
