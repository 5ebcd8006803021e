"""``forewarn nab``: streams every CSV under a directory into scored copies."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from forewarn.cli import main
from forewarn.nab import score_series


def _write(path: Path, values: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    start = np.datetime64("2024-01-01T00:00")
    rows = [f"{start + np.timedelta64(5 * i, 'm')},{v}" for i, v in enumerate(values)]
    path.write_text("timestamp,value\n" + "\n".join(r.replace("T", " ") for r in rows) + "\n")


def test_scores_every_file_into_the_same_relative_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = (10.0 + rng.normal(0.0, 1.0, 900)).tolist()
    values[800] = 60.0
    _write(tmp_path / "data" / "a" / "one.csv", values)
    _write(tmp_path / "data" / "b" / "two.csv", values[:50])
    assert main(["nab", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "-q"]) == 0
    with (tmp_path / "out" / "a" / "one.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 900 and rows[0]["timestamp"] == "2024-01-01 00:00"  # passed through as read
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert scores.min() >= 0.0 and scores.max() <= 1.0 and int(scores.argmax()) == 800
    assert (tmp_path / "out" / "b" / "two.csv").exists()


def test_missing_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nab", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_score_series_reads_no_future() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 1.0, 700)
    times = 300.0 * np.arange(700.0)
    full = score_series(values, times)
    prefix = score_series(values[:500], times[:500])
    np.testing.assert_array_equal(full[:500], prefix)
