"""Run the detector over NAB-style CSV files as a stream, the way the core service runs it.

Each ``timestamp,value`` file is one series (slot 0 of a fresh detector built by
:func:`core.detect.make_detector` with the default config, the service's), fed in blocks of
rows with their timestamps; nothing looks ahead and no statistic of the whole file is used.
The result is ``OUT_DIR/<same relative path>.csv`` with ``timestamp,value,anomaly_score``.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     src = Path(d, "in", "a"); src.mkdir(parents=True)
...     rows = "".join(f"2020-01-01 {h:02d}:00:00,{h % 3}\\n" for h in range(24))
...     _ = (src / "s.csv").write_text("timestamp,value\\n" + rows)
...     n = run_nab(Path(d, "in"), Path(d, "out"), progress=False)
...     head = Path(d, "out", "a", "s.csv").read_text().splitlines()[:2]
>>> n, head
(1, ['timestamp,value,anomaly_score', '2020-01-01 00:00:00,0.0,0.0'])
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.detect import DetectorConfig, make_detector

__all__ = ["BLOCK_ROWS", "run_nab", "score_series"]

#: rows per detector call: the service hands over one device batch at a time
BLOCK_ROWS = 64


def score_series(
    values: NDArray[np.float64], times: NDArray[np.float64],
    config: DetectorConfig | None = None,
) -> NDArray[np.float64]:
    """Anomaly scores of one series streamed through a fresh detector in blocks of rows."""
    detector = make_detector(config)
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


def run_nab(data_dir: Path, out_dir: Path, progress: bool) -> int:
    """Score every CSV under ``data_dir`` into ``out_dir``; returns the number of files."""
    files = sorted(p for p in data_dir.rglob("*.csv") if p.is_file())
    for n, path in enumerate(files, 1):
        rel = path.relative_to(data_dir)
        stamps, values, times = _read(path)
        scores = score_series(values, times)
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
