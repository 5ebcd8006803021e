"""``forewarn nab``: streams every CSV under a directory into scored copies."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.detect import DetectorConfig
from forewarn.cli import main
from forewarn.nab import probation_config, probation_rows, run_nab, score_series


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


# -- learning over NAB's probation ------------------------------------------------------------

@pytest.mark.parametrize("n_rows", [0, 6, 1243, 1344, 4032, 4730, 5000, 5001, 22695],
                         ids=lambda n: f"{n}rows")
def test_probation_is_nabs(n_rows: int) -> None:
    """The runner's probation is the scorer's (benchmarks/nab_scoring.py, NAB's own rule)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.nab_scoring import probation_rows as scorer_probation

    assert probation_rows(n_rows) == scorer_probation(n_rows)


@given(st.integers(min_value=0, max_value=100_000), st.integers(min_value=0, max_value=100_000))
@settings(max_examples=200, deadline=None)
def test_likelihood_learning_follows_the_probation(a: int, b: int) -> None:
    """The likelihood stage learns a quarter of every file's probation (150 of 604 rows),
    longer for a longer probation, and nothing else of the config changes."""
    short, long = sorted((probation_rows(a), probation_rows(b)))
    cs, cl = probation_config(DetectorConfig(), short), probation_config(DetectorConfig(), long)
    assert abs(cs.likelihood_warmup - short * 150 / 604) <= 0.5
    assert cs.likelihood_warmup <= cl.likelihood_warmup
    drop = {"likelihood_warmup"}
    assert cs.model_dump(exclude=drop) == DetectorConfig().model_dump(exclude=drop)


def test_a_file_of_the_reference_length_runs_the_config_as_it_is() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 4032)
    times = 300.0 * np.arange(4032.0)
    values[3000] = 9.0
    by_probation = score_series(values, times, probation=probation_rows(4032))
    np.testing.assert_array_equal(by_probation, score_series(values, times))
    assert by_probation[3000] > 0.5


def test_a_short_file_learns_over_its_shorter_probation(tmp_path: Path) -> None:
    """A 1,344-row file (probation 201): its likelihood learns 50 samples after the detectors'
    300, so a level shift at row 380 fires under ``--learn probation`` (the default) and not
    under ``--learn config`` (the likelihood learns until row 450)."""
    rng = np.random.default_rng(5)
    values = (10.0 + rng.normal(0.0, 1.0, 1344)).tolist()
    for row in range(380, 410):
        values[row] += 2.0  # 2 sd for 30 rows: no record, a likelihood firing
    _write(tmp_path / "data" / "s.csv", values)
    fired = {}
    for learn in ("probation", "config", None):
        out = tmp_path / f"out-{learn}"
        argv = ["nab", str(tmp_path / "data"), "--out", str(out), "-q"]
        assert main(argv + ([] if learn is None else ["--learn", learn])) == 0
        with (out / "s.csv").open() as fh:
            fired[learn] = np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)])
    assert fired["probation"][380:420].max() > 0.0 and fired["config"][:450].max() == 0.0
    np.testing.assert_array_equal(fired[None], fired["probation"])


def test_scaled_learning_reads_no_future() -> None:
    """With the probation given, a prefix of the file scores as the whole file's first rows."""
    rng = np.random.default_rng(5)
    values = rng.normal(0.0, 1.0, 1400)
    times = 3600.0 * np.arange(1400.0)
    full = score_series(values, times, probation=probation_rows(1400))
    prefix = score_series(values[:700], times[:700], probation=probation_rows(1400))
    np.testing.assert_array_equal(full[:700], prefix)


def test_unknown_learning_rule_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="learn must be one of"):
        run_nab(tmp_path, tmp_path / "out", progress=False, learn="time")
