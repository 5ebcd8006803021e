"""Backtest an exported telemetry file: what forewarn would have flagged, when, which sensor.

``forewarn score INPUT --out OUTPUT``; INPUT may be a folder of files.

A folder INPUT writes ``OUTPUT/<name>.csv`` per file (and ``<plot stem>-<name>.png`` plots);
``--json`` then holds one summary per file. docs/score.md explains the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from forewarn.errors import ForewarnError
from forewarn.score.run import GENERIC_LEVEL
from forewarn.text import paragraph

__all__ = ["register", "run"]


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _separator(text: str | None) -> str | None:
    if text is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ",
             "pipe": "|"}
    sep = named.get(text.lower(), text)
    if len(sep) != 1:
        raise ForewarnError(f"--sep {text!r}: give one character (or tab, comma, semicolon, "
                            "space, pipe)")
    return sep


def _progress(total: int, quiet: bool) -> Any:
    """A progress bar on stderr for a folder: off when stderr is no terminal or with -q."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    # per-file lines go above the bar on a terminal, and to stdout as they are when it is piped
    return Progress(TextColumn("scoring {task.description}"), BarColumn(),
                    MofNCompleteColumn(), console=console, transient=True,
                    redirect_stdout=sys.stdout.isatty(),
                    disable=quiet or total < 2 or not console.is_terminal)


def run(args: argparse.Namespace) -> int:
    """Score every input file; exit code 0, or 2 (with one line on stderr) on a user error."""
    from forewarn.score import (  # numba compiles lazily: keep `forewarn --help` fast
        ReadOptions,
        ScoreOptions,
        check_outputs,
        input_files,
        load_detector_config,
        output_for,
        score_file,
        summary,
        write_json,
        write_scored,
    )
    from forewarn.score.plot import plot_device
    from forewarn.text import plural
    from rules.errors import RuleFileError
    from rules.model import load_rules

    inputs = input_files(args.input)
    folder = args.input.is_dir()
    check_outputs(inputs, args.out, folder, args.plot, args.json)
    read = ReadOptions(separator=_separator(args.sep), time_column=args.time_column,
                       fields=_names(args.fields), exclude=_names(args.exclude) or (),
                       device_column=args.device_column)
    try:
        rules = load_rules(args.rules).rules if args.rules is not None else None
    except RuleFileError as exc:
        raise ForewarnError(str(exc).splitlines()[0]) from exc
    options = ScoreOptions(config=load_detector_config(args.detector_config),
                           warmup=args.warmup, hold=args.hold, rules=rules, product=args.product)
    summaries: list[dict[str, Any]] = []
    with _progress(len(inputs), args.quiet) as progress:
        task = progress.add_task(inputs[0].name, total=len(inputs))
        for path in inputs:
            progress.update(task, description=path.name)
            scored = score_file(path, read, options)
            out = output_for(path, args.out, folder)
            write_scored(scored, out, per_field=args.per_field)
            doc = summary(scored)
            summaries.append(doc)
            if args.plot is not None:
                several = len(scored.results) > 1
                for series, result in list(zip(scored.telemetry.devices, scored.results,
                                               strict=True))[:20]:
                    stem = args.plot.stem + (f"-{path.stem}" if folder else "")
                    stem += f"-{series.device_id}" if several else ""
                    title = path.name + (f" · {series.device_id}" if several else "")
                    plot_device(series, result, scored.telemetry.fields,
                                args.plot.with_name(stem + (args.plot.suffix or ".png")), title)
            for warning in doc["warnings"]:
                progress.console.print(f"forewarn: warning: {path}: {warning}", markup=False,
                                       highlight=False, soft_wrap=True)
            if not args.quiet:
                print(f"{path}: {plural(doc['rows'], 'row')}, "
                      f"{plural(len(doc['fields']), 'field')}, "
                      f"{plural(len(doc['episodes']), 'alarm episode')}, "
                      f"{plural(doc['alarm_rows'], 'alarm row')} "
                      f"in {doc['run_time_s']:.2f} s → {out}", flush=True)
            progress.advance(task)
    if args.json is not None:
        write_json(summaries[0] if not folder else {"files": summaries}, args.json)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``score`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "score", help="backtest an exported telemetry file: what forewarn would have flagged",
        description=paragraph(__doc__),
    )
    parser.add_argument("input", type=Path, metavar="INPUT",
                        help="CSV or Parquet file of one device (or of many, with "
                        "--device-column), or a folder of such files")
    parser.add_argument("--out", type=Path, required=True, metavar="OUTPUT",
                        help="scored rows to write: .csv (or .txt) as CSV, .parquet (or .pq) as "
                        "Parquet; never one of the inputs (a folder of CSVs when INPUT is "
                        "a folder)")
    parser.add_argument("--sep", default=None, metavar="CHAR",
                        help="CSV delimiter (default: detected among , ; tab | space)")
    parser.add_argument("--time-column", default=None, metavar="NAME",
                        help="the time column (default: found by name or by its values); "
                        "ISO 8601 or epoch s/ms/µs/ns")
    parser.add_argument("--fields", default=None, metavar="A,B,C",
                        help="the sensor columns to score (default: every numeric column)")
    parser.add_argument("--exclude", default=None, metavar="A,B",
                        help="columns not to score (codes, constants; columns named like "
                        "labels, such as anomaly or changepoint, are left out anyway)")
    parser.add_argument("--device-column", default=None, metavar="NAME",
                        help="split a multi-device file by this column")
    parser.add_argument("--warmup", default=None, metavar="ROWS|DURATION",
                        help="rows (500) or time (2h) during which the detector learns and "
                        "nothing alarms (default: the detector's warm-up, 1440 rows, or "
                        "the first third of a shorter recording)")
    parser.add_argument("--hold", default="10", metavar="ROWS|DURATION",
                        help="how long the level must stay high before the default rule "
                        "alarms (default: 10 sample intervals)")
    parser.add_argument("--config", dest="detector_config", type=Path, default=None,
                        metavar="FILE", help="detector settings (TOML or JSON) over the "
                        "default detector the service runs")
    parser.add_argument("--rules", type=Path, default=None, metavar="FILE",
                        help="a rules YAML file to decide alarms with (default: any field's "
                        f"level ≥ {GENERIC_LEVEL} for the hold time, or a stuck sensor)")
    parser.add_argument("--product", default="generic", metavar="NAME",
                        help="the devices' product, for --rules that name one (e.g. heat_pump)")
    parser.add_argument("--per-field", action="store_true",
                        help="also write score_<field> for every field")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="draw fields, alarm episodes, onsets and the score (.png, .svg or "
                        ".pdf)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write a summary: rows, fields, episodes, run time")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no per-file line and no progress bar")
    parser.set_defaults(func=run)
