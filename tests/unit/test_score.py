"""``forewarn score``: reading exported files, one output row per input row, what alarms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from forewarn import cli
from forewarn.score import ReadOptions, ScoreOptions, score_telemetry
from forewarn.score.read import read_telemetry

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def forewarn_main(monkeypatch: pytest.MonkeyPatch) -> object:
    """``forewarn`` with the score command registered (the lead adds it to COMMANDS)."""
    if "score" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "score"))
    return cli.main


def _run(main: object, *argv: str) -> int:
    assert callable(main)
    code = main(["score", *argv])
    assert isinstance(code, int)
    return code


# -- parsing ---------------------------------------------------------------------------------

PARSE_CASES = [
    pytest.param("time,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,3,4\n",
                 {}, ",", "time", ("a", "b"), [T0, T0 + 1], [[1, 2], [3, 4]], id="comma-iso"),
    pytest.param("timestamp;a;b\n2026-01-01T00:00:00Z;1,5;2\n2026-01-01T00:00:10Z;-3;4\n",
                 {}, ";", "timestamp", ("a", "b"), [T0, T0 + 10], [[1.5, 2], [-3, 4]],
                 id="semicolon-iso-zulu-decimal-comma"),
    pytest.param("timestamp;a;b\n2026-01-01T00:00:00Z;on;2\n2026-01-01T00:00:10Z;off;4\n",
                 {}, ";", "timestamp", ("b",), [T0, T0 + 10], [[2], [4]],
                 id="semicolon-text-column-left-out"),
    pytest.param("epoch\ta\tb\n1767225600\t1\t2\n1767225660\t3\t4\n",
                 {}, "\t", "epoch", ("a", "b"), [T0, T0 + 60], [[1, 2], [3, 4]],
                 id="tab-epoch-s"),
    pytest.param("ts|a|b\n1767225600000|1|2\n1767225600500|3|4\n",
                 {}, "|", "ts", ("a", "b"), [T0, T0 + 0.5], [[1, 2], [3, 4]],
                 id="pipe-epoch-ms"),
    pytest.param("a,b,when\n1,2,2026-01-01T01:00:00+01:00\n3,4,2026-01-01T00:00:05Z\n",
                 {}, ",", "when", ("a", "b"), [T0, T0 + 5], [[1, 2], [3, 4]],
                 id="time-found-by-values-mixed-zones"),
    pytest.param("clock,a\n0,1\n1,2\n", {"time_column": "clock"}, ",", "clock", ("a",),
                 [0.0, 1.0], [[1], [2]], id="time-column-given-relative-seconds"),
    pytest.param("time,a,b\n2026-01-01 00:00:00,1,\n2026-01-01 00:00:01,NaN,4\n"
                 "2026-01-01 00:07:00,NA,5\n", {}, ",", "time", ("a", "b"),
                 [T0, T0 + 1, T0 + 420], [[1, None], [None, 4], [None, 5]],
                 id="gaps-and-missing-values"),
    pytest.param("time,a,b,code\n2026-01-01 00:00:00,1,2,0\n2026-01-01 00:00:01,3,4,1\n",
                 {"exclude": ("code",)}, ",", "time", ("a", "b"), [T0, T0 + 1],
                 [[1, 2], [3, 4]], id="exclude-a-column"),
    pytest.param("time,a,anomaly,changepoint\n0,1,0,0\n1,3,1,1\n", {}, ",", "time", ("a",),
                 [0.0, 1.0], [[1], [3]], id="label-columns-left-out"),
    pytest.param("time,a,anomaly\n0,1,0\n1,3,1\n", {"fields": ("a", "anomaly")}, ",",
                 "time", ("a", "anomaly"), [0.0, 1.0], [[1, 0], [3, 1]],
                 id="label-scored-when-named"),
    pytest.param("time a b\n0 1 2\n1 3 4\n", {"fields": ("b",)}, " ", "time", ("b",),
                 [0.0, 1.0], [[2], [4]], id="space-fields-given"),
]


@pytest.mark.parametrize(
    ("text", "options", "separator", "time_column", "fields", "times", "values"), PARSE_CASES)
def test_reads_delimiters_time_formats_gaps_and_missing_values(
    tmp_path: Path, text: str, options: dict[str, object], separator: str, time_column: str,
    fields: tuple[str, ...], times: list[float], values: list[list[float | None]],
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text)
    table = read_telemetry(path, ReadOptions(**options))  # type: ignore[arg-type]
    assert (table.separator, table.time_column, table.fields) == (separator, time_column,
                                                                  fields)
    (device,) = table.devices
    assert device.t.tolist() == times
    expected = np.array([[np.nan if v is None else v for v in row] for row in values])
    np.testing.assert_array_equal(device.values, expected)


def test_device_column_splits_rows_and_sorts_each_device(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text("device,time,a,b\npump-1,10,1,2\npump-2,5,3,4\npump-1,0,5,6\n"
                    "pump-2,6,7,8\n")
    table = read_telemetry(path, ReadOptions(device_column="device"))
    by_id = {d.device_id: d for d in table.devices}
    assert table.fields == ("a", "b") and sorted(by_id) == ["pump-1", "pump-2"]
    assert by_id["pump-1"].rows.tolist() == [2, 0] and by_id["pump-1"].t.tolist() == [0, 10]
    assert by_id["pump-2"].values.tolist() == [[3, 4], [7, 8]]
    assert table.out_of_order == 1


def test_reads_parquet_with_a_timestamp_column(tmp_path: Path) -> None:
    stamps = np.array([int(T0), int(T0) + 1], dtype="datetime64[s]").astype("datetime64[ms]")
    pq.write_table(pa.table({"recorded": pa.array(stamps), "a": [1.0, None]}),
                   tmp_path / "x.parquet")
    table = read_telemetry(tmp_path / "x.parquet", ReadOptions())
    assert table.time_column == "recorded" and table.devices[0].t.tolist() == [T0, T0 + 1]
    assert np.isnan(table.devices[0].values[1, 0])


# -- output ----------------------------------------------------------------------------------

def _related(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 40.0) + rng.normal(0.0, 0.3, n)
    a = 10.0 + 2.0 * load + rng.normal(0.0, 0.05, n)
    b = 50.0 + 5.0 * load + rng.normal(0.0, 0.1, n)
    return a, b


def _write_csv(path: Path, columns: dict[str, np.ndarray], step: float = 60.0) -> None:
    n = len(next(iter(columns.values())))
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time", *columns])
        for i in range(n):
            out.writerow([f"{T0 + step * i:.0f}", *(f"{c[i]:.5f}" for c in columns.values())])


def test_one_output_row_per_input_row_in_input_order(tmp_path: Path,
                                                     forewarn_main: object) -> None:
    a, b = _related(600, 1)
    order = np.random.default_rng(0).permutation(600)  # rows out of time order
    src = tmp_path / "shuffled.csv"
    with src.open("w") as fh:
        fh.write("time,a,b\n")
        fh.writelines(f"{T0 + 60 * i:.0f},{a[i]:.4f},{b[i]:.4f}\n" for i in order)
    out = tmp_path / "out.csv"
    assert _run(forewarn_main, str(src), "--out", str(out), "--warmup", "200", "--per-field",
                "-q") == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["time", "anomaly_score", "alarm", "onset", "field", "score_a",
                             "score_b"]
    assert [float(r["time"]) for r in rows] == [T0 + 60 * i for i in order]
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)


def test_changed_relation_within_range_alarms_and_names_one_of_the_fields(
    tmp_path: Path, forewarn_main: object,
) -> None:
    n, change = 4000, 3000
    a, b = _related(n, 2)
    rng = np.random.default_rng(3)
    c = rng.normal(0.0, 1.0, n)  # an unrelated field
    # after the change b follows a the wrong way round, inside its usual range
    b[change:] = 50.0 - 5.0 * (a[change:] - 10.0) / 2.0 + rng.normal(0.0, 0.1, n - change)
    assert b[:change].min() <= b[change:].min() and b[change:].max() <= b[:change].max()
    src, out, summary = tmp_path / "rig.csv", tmp_path / "out.csv", tmp_path / "s.json"
    _write_csv(src, {"a": a, "b": b, "c": c})
    assert _run(forewarn_main, str(src), "--out", str(out), "--warmup", "1d", "--json",
                str(summary), "--plot", str(tmp_path / "p.png"), "-q") == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    alarm = np.array([int(r["alarm"]) for r in rows])
    assert alarm[:change].sum() == 0
    assert alarm[change:change + 100].any() and alarm[change + 100:].mean() > 0.8
    first = int(np.argmax(alarm))
    assert rows[first]["onset"] == "1" and rows[first]["field"] in {"a", "b"}
    doc = json.loads(summary.read_text())
    assert doc["rows"] == n and doc["fields"] == ["a", "b", "c"]
    assert doc["episodes"][0]["field"] in {"a", "b"}
    assert doc["episodes"][0]["start_row"] == first + 1 and doc["run_time_s"] > 0
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_pure_noise_raises_few_alarms(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    src = tmp_path / "noise.csv"
    _write_csv(src, {f"f{j}": rng.normal(0.0, 1.0, n) for j in range(4)}, step=1.0)
    scored = score_telemetry(read_telemetry(src, ReadOptions()), ScoreOptions())
    (result,) = scored.results
    assert result.alarm.mean() < 0.01 and len(result.episodes) <= 3


def test_device_column_scores_devices_apart_in_one_output(tmp_path: Path,
                                                          forewarn_main: object) -> None:
    a, b = _related(400, 5)
    src = tmp_path / "two.csv"
    with src.open("w") as fh:
        fh.write("site,time,a,b\n")
        for i in range(400):
            fh.write(f"north,{T0 + 60 * i:.0f},{a[i]:.4f},{b[i]:.4f}\n")
            fh.write(f"south,{T0 + 60 * i:.0f},{b[i]:.4f},{a[i]:.4f}\n")
    out = tmp_path / "out.csv"
    assert _run(forewarn_main, str(src), "--out", str(out), "--device-column", "site",
                "--warmup", "100", "-q") == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 800 and [r["site"] for r in rows[:4]] == ["north", "south"] * 2


# -- errors ----------------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param("a,b\n1,2\n3,4\n", (), "no time column found", id="no-time-column"),
    pytest.param("time,name\n2026-01-01,x\n2026-01-02,y\n", (), "no numeric column",
                 id="no-numeric-column"),
    pytest.param(b"\x00\x01\x02binary", (), "not a text file", id="binary-file"),
    pytest.param("", (), "empty file", id="empty-file"),
    pytest.param("time,a\n2026-01-01,1\nyesterday,2\n", (), "row 2", id="unreadable-time"),
    pytest.param("time,a\n2026-01-01,1\n,2\n", (), "row 2 has no time", id="missing-time"),
    pytest.param("time,a\n0,1\n1,2\n", ("--fields", "a,zz"), "no column 'zz'",
                 id="unknown-field"),
    pytest.param("time,a\n0,1\n1,2\n", ("--warmup", "soon"), "--warmup 'soon'",
                 id="bad-warmup"),
    pytest.param("time,a\n0,1\n1,2\n", ("--sep", ";;"), "--sep", id="bad-separator"),
    pytest.param("time,a\n0,1\n1,2\n", ("--time-column", "clock"), "no time column 'clock'",
                 id="unknown-time-column"),
]


@pytest.mark.parametrize(("content", "argv", "message"), ERROR_CASES)
def test_user_mistakes_are_one_line_errors_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forewarn_main: object,
    content: str | bytes, argv: tuple[str, ...], message: str,
) -> None:
    src = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        src.write_text(content)
    assert _run(forewarn_main, str(src), "--out", str(tmp_path / "o.csv"), *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    if not argv or argv[0] not in ("--warmup", "--sep"):
        assert str(src) in err


def test_a_bad_detector_config_names_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forewarn_main: object,
) -> None:
    src, config = tmp_path / "ok.csv", tmp_path / "detector.toml"
    src.write_text("time,a\n0,1\n1,2\n")
    config.write_text("[detector]\nregresion_weight = 1.0\n")
    assert _run(forewarn_main, str(src), "--out", str(tmp_path / "o.csv"), "--config",
                str(config)) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "regresion_weight" in err and "Traceback" not in err


def test_missing_input_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   forewarn_main: object) -> None:
    assert _run(forewarn_main, str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_folder_scores_every_file_into_the_output_folder(tmp_path: Path,
                                                           forewarn_main: object) -> None:
    a, b = _related(300, 6)
    (tmp_path / "in").mkdir()
    _write_csv(tmp_path / "in" / "one.csv", {"a": a, "b": b})
    pq.write_table(pa.table({"time": pa.array(T0 + 60.0 * np.arange(300)), "a": a, "b": b}),
                   tmp_path / "in" / "two.parquet")
    assert _run(forewarn_main, str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                "--warmup", "100", "--json", str(tmp_path / "s.json"), "-q") == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [f["rows"] for f in doc["files"]] == [300, 300]
    for name in ("one", "two"):
        assert len((tmp_path / "out" / f"{name}.csv").read_text().splitlines()) == 301


def test_a_short_recording_learns_from_its_first_third(tmp_path: Path) -> None:
    a, b = _related(900, 7)
    src = tmp_path / "run.csv"
    _write_csv(src, {"a": a, "b": b}, step=1.0)
    scored = score_telemetry(read_telemetry(src, ReadOptions()), ScoreOptions())
    (result,) = scored.results
    assert result.warmup_rows == 300 and "learns from the first 300 rows" in result.warnings[0]
    assert not result.alarm[:300].any()


def test_product_rules_apply_with_the_product_given(tmp_path: Path,
                                                    forewarn_main: object,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _related(400, 8)
    src, rules = tmp_path / "hp.csv", tmp_path / "rules.yaml"
    _write_csv(src, {"a": a, "b": b})
    rules.write_text("rules:\n  - name: hp\n    product: heat_pump\n    score_at_least: 0.9\n"
                     "    for: 10m\n")
    argv = (str(src), "--out", str(tmp_path / "o.csv"), "--rules", str(rules), "--warmup",
            "100", "-q")
    assert _run(forewarn_main, *argv) == 0
    assert "no rule applies to product 'generic'" in capsys.readouterr().err
    assert _run(forewarn_main, *argv, "--product", "heat_pump") == 0
    assert "no rule applies" not in capsys.readouterr().err


def test_a_stuck_sensor_alarms_and_is_blamed(tmp_path: Path) -> None:
    a, b = _related(3000, 9)
    c = np.random.default_rng(10).normal(20.0, 1.0, 3000)  # unrelated: no level can blame it
    c[2500:] = c[2499]
    src = tmp_path / "stuck.csv"
    _write_csv(src, {"a": a, "b": b, "c": c})
    scored = score_telemetry(read_telemetry(src, ReadOptions()), ScoreOptions(warmup="1000"))
    (result,) = scored.results
    assert not result.alarm[1000:2500].any()
    (episode,) = [e for e in result.episodes if e.start_row >= 2500]
    assert episode.start_row < 2520 and episode.field == "c"
    assert set(result.blame[result.alarm].tolist()) == {2}
