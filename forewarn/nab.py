"""Run the detector over NAB-style CSV files as a stream, the way the core service runs it.

Each ``timestamp,value`` file is one series (slot 0 of a fresh detector built by
:func:`core.detect.make_detector` with the default config, the service's), fed in blocks of
rows with their timestamps; nothing looks ahead. The result is
``OUT_DIR/<same relative path>.csv`` with ``timestamp,value,anomaly_score``.

**Learning over NAB's probation** (``learn="probation"``, the default of ``forewarn nab``):
NAB hands every detector a file's ``probationaryPeriod`` (:func:`probation_rows`: 15 % of its
rows, at most 750) and ignores what it reports there. The likelihood stage's learning length
(``likelihood_warmup``, 150 samples) was chosen between 4,032-row files (probation
:data:`REFERENCE_PROBATION`) and 1,344-row ones, where it costs the file's first windows; it is
scaled by each file's probation over 604 (:func:`probation_config`), the same rule for every
file, so a 1,344-row file's likelihood learns 50 samples and a 4,032-row file's exactly as the
service's. The per-field detectors' ``warmup`` stays a sample count: scaled too, it gained the
tuning half at 15-minute rows but lost the held-out half at every sampling (docs/detection.md).
The file's length is the only thing read of the whole file, as NAB gives it.
``learn="config"`` runs the config's sample counts as they are (what the service runs).
"""

from __future__ import annotations

import csv
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.detect import DetectorConfig, make_detector

__all__ = ["BLOCK_ROWS", "LEARN_RULES", "REFERENCE_PROBATION", "probation_config",
           "probation_rows", "run_nab", "score_series"]

#: rows per detector call: the service hands over one device batch at a time
BLOCK_ROWS = 64

#: how a file's learning lengths are set: over its probation, or the config's sample counts
LEARN_RULES = ("probation", "config")

#: NAB's probation of a 4,032-row file (14 days at 5 minutes), the files the defaults fit
REFERENCE_PROBATION = 604


def probation_rows(n_rows: int) -> int:
    """NAB's probationary period of a file of ``n_rows``: 15 % of it, at most 750 rows.

    >>> probation_rows(4032), probation_rows(1344), probation_rows(22695)
    (604, 201, 750)
    """
    return int(min(math.floor(0.15 * n_rows), 0.15 * 5000))


def probation_config(config: DetectorConfig, probation: int) -> DetectorConfig:
    """``config`` with its likelihood stage's learning scaled to a probation of ``probation``.

    ``likelihood_warmup`` is multiplied by ``probation /`` :data:`REFERENCE_PROBATION`
    (rounded); nothing else changes.

    >>> probation_config(DetectorConfig(), 201).likelihood_warmup
    50
    >>> probation_config(DetectorConfig(), 604) == DetectorConfig()
    True
    """
    scaled = round(config.likelihood_warmup * probation / REFERENCE_PROBATION)
    return config.model_copy(update={"likelihood_warmup": scaled})


def score_series(
    values: NDArray[np.float64], times: NDArray[np.float64],
    config: DetectorConfig | None = None, probation: int | None = None,
) -> NDArray[np.float64]:
    """Anomaly scores of one series streamed through a fresh detector in blocks of rows.

    ``probation``: the rows the series may learn in (NAB's probationary period), which scales
    the config's learning lengths (:func:`probation_config`); None runs them as configured.
    """
    cfg = config or DetectorConfig()
    if probation is not None:
        cfg = probation_config(cfg, probation)
    detector = make_detector(cfg)
    slots = np.zeros(1, dtype=np.int64)
    scores = np.zeros(values.shape[0], dtype=np.float64)
    for start in range(0, values.shape[0], BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, values.shape[0])
        block = values[start:stop].reshape(-1, 1)
        scores[start:stop] = detector.update(slots, block, times[start:stop])[:, 0]
    return scores


def _seconds(text: str) -> float:
    ts = datetime.fromisoformat(text.strip())
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _read(path: Path) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
    stamps: list[str] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            if len(row) < 2:
                continue
            stamps.append(row[0])
            try:
                values.append(float(row[1]))
            except ValueError:
                values.append(float("nan"))
    times = np.array([_seconds(s) for s in stamps], dtype=np.float64)
    return stamps, np.array(values, dtype=np.float64), times


def run_nab(data_dir: Path, out_dir: Path, progress: bool, learn: str = "probation") -> int:
    """Score every CSV under ``data_dir`` into ``out_dir``; returns the number of files.

    ``learn`` is one of :data:`LEARN_RULES`: ``"probation"`` scales each file's learning
    lengths to its NAB probation, ``"config"`` runs the default config's sample counts.
    """
    if learn not in LEARN_RULES:
        raise ValueError(f"learn must be one of {LEARN_RULES}, not {learn!r}")
    files = sorted(p for p in data_dir.rglob("*.csv") if p.is_file())
    for n, path in enumerate(files, 1):
        rel = path.relative_to(data_dir)
        stamps, values, times = _read(path)
        probation = probation_rows(values.shape[0]) if learn == "probation" else None
        scores = score_series(values, times, probation=probation)
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["timestamp", "value", "anomaly_score"])
            for stamp, value, score in zip(stamps, values.tolist(), scores.tolist(), strict=True):
                writer.writerow([stamp, repr(value), repr(score)])
        if progress:
            print(f"[{n}/{len(files)}] {rel}", file=sys.stderr)
    return len(files)
