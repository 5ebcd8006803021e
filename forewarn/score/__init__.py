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
from forewarn.score.report import (
    OUTPUT_SUFFIXES,
    Scored,
    summary,
    write_csv,
    write_json,
    write_parquet,
    write_scored,
)
from forewarn.score.run import ScoreOptions, missing_rule_fields, score_device

__all__ = [
    "OUTPUT_SUFFIXES",
    "PLOT_SUFFIXES",
    "ReadOptions",
    "ScoreError",
    "ScoreOptions",
    "Scored",
    "check_outputs",
    "input_files",
    "load_detector_config",
    "output_for",
    "score_file",
    "score_telemetry",
    "summary",
    "write_csv",
    "write_json",
    "write_parquet",
    "write_scored",
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


#: picture formats of ``--plot`` (no suffix: PNG)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def output_for(path: Path, out: Path, folder: bool) -> Path:
    """Where the scored rows of input ``path`` go: ``out``, or ``out/<name>.csv`` for a folder."""
    return out / f"{path.stem}.csv" if folder else out


def check_outputs(inputs: list[Path], out: Path, folder: bool, plot: Path | None = None,
                  json_path: Path | None = None) -> None:
    """Refuse, before anything is read or written, an output that would overwrite an input
    and an output suffix that cannot be written.

    >>> try:
    ...     check_outputs([Path("pump.csv")], Path("./pump.csv"), folder=False)
    ... except ScoreError as exc:
    ...     print(exc)
    --out pump.csv is the input file pump.csv: it would be overwritten (choose another name)
    """
    if not folder and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ScoreError(f"--out {out}: cannot write {out.suffix or 'a file without a suffix'}"
                         f": use {', '.join(OUTPUT_SUFFIXES)}")
    if plot is not None and plot.suffix.lower() not in ("", *PLOT_SUFFIXES):
        raise ScoreError(f"--plot {plot}: cannot draw {plot.suffix}: use "
                         f"{', '.join(PLOT_SUFFIXES)}")
    sources = {path.resolve(): path for path in inputs}
    written = [("--out", output_for(path, out, folder)) for path in inputs]
    written += [(option, path) for option, path in (("--plot", plot), ("--json", json_path))
                if path is not None]
    for option, path in written:
        source = sources.get(path.resolve())
        if source is not None:
            shown = out if option == "--out" else path
            raise ScoreError(f"{option} {shown} is the input file {source}: it would be "
                             "overwritten (choose another name)")


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
    missing = (missing_rule_fields(options.rules, options.product, telemetry.fields)
               if options.rules is not None else None)
    return Scored(telemetry, results, time.perf_counter() - started,
                  [missing] if missing else [])


def score_file(path: Path, read: ReadOptions, options: ScoreOptions) -> Scored:
    """Read and score one file (the run time counts reading too)."""
    started = time.perf_counter()
    telemetry = read_telemetry(path, read)
    scored = score_telemetry(telemetry, options)
    scored.seconds = time.perf_counter() - started
    return scored
