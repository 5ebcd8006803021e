"""``forewarn score`` as a newcomer runs it (issue 24): no lost input, the output format the
suffix names, one-line errors, warnings for rules that cannot fire, progress on a folder."""

from __future__ import annotations

import csv
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from forewarn import cli

T0 = 1_767_225_600.0
ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, n: int = 300, seed: int = 1, names: tuple[str, ...] = ("a", "b")) -> None:
    rng = np.random.default_rng(seed)
    load = np.sin(np.arange(n) / 40.0) + rng.normal(0.0, 0.3, n)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time", *names])
        for i in range(n):
            out.writerow([f"{T0 + 60 * i:.0f}",
                          *(f"{(j + 1) * load[i] + rng.normal(0, 0.05):.5f}"
                            for j in range(len(names)))])


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("spelling", ["same", "dotted"], ids=["same-path", "other-spelling"])
def test_out_equal_to_the_input_is_refused_and_the_input_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spelling: str,
) -> None:
    src = tmp_path / "pump.csv"
    _write(src)
    before = src.read_bytes()
    out = src if spelling == "same" else tmp_path / "sub" / ".." / "pump.csv"
    (tmp_path / "sub").mkdir()
    assert cli.main(["score", str(src), "--out", str(out), "--warmup", "100"]) == 2
    _one_line_error(capsys, "is the input file", "--out")
    assert src.read_bytes() == before


def test_a_folder_scored_into_itself_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "one.csv")
    before = (tmp_path / "one.csv").read_bytes()
    assert cli.main(["score", str(tmp_path), "--out", str(tmp_path), "-q"]) == 2
    _one_line_error(capsys, "one.csv", "overwritten")
    assert (tmp_path / "one.csv").read_bytes() == before


def test_json_onto_the_input_is_refused(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pump.csv"
    _write(src)
    before = src.read_bytes()
    assert cli.main(["score", str(src), "--out", str(tmp_path / "o.csv"),
                     "--json", str(src)]) == 2
    _one_line_error(capsys, "--json")
    assert src.read_bytes() == before and not (tmp_path / "o.csv").exists()


def test_out_parquet_writes_parquet(tmp_path: Path) -> None:
    src = tmp_path / "pump.csv"
    _write(src)
    assert cli.main(["score", str(src), "--out", str(tmp_path / "o.parquet"),
                     "--warmup", "100", "-q"]) == 0
    table = pq.read_table(tmp_path / "o.parquet")
    assert table.num_rows == 300
    assert table.column_names == ["time", "anomaly_score", "alarm", "onset", "field"]


@pytest.mark.parametrize(("argv", "words"), [
    pytest.param(("--out", "{d}/o.xlsx"), ("o.xlsx", ".csv", ".parquet"), id="out-xlsx"),
    pytest.param(("--out", "{d}/o.csv", "--plot", "{d}/o.txt"), ("--plot", ".txt", ".png"),
                 id="plot-txt"),
])
def test_unsupported_suffixes_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
    words: tuple[str, ...],
) -> None:
    src = tmp_path / "pump.csv"
    _write(src)
    assert cli.main(["score", str(src), *(a.format(d=tmp_path) for a in argv)]) == 2
    _one_line_error(capsys, *words)
    assert not (tmp_path / "o.csv").exists()


def test_rules_whose_fields_the_file_lacks_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "pump.csv"
    _write(src, names=("flow", "power"))
    assert cli.main(["score", str(src), "--out", str(tmp_path / "o.csv"), "--warmup", "100",
                     "--rules", str(ROOT / "config/rules/heat_pump.yaml"),
                     "--product", "heat_pump", "-q"]) == 0
    err = capsys.readouterr().err
    assert "heat_pump_refrigerant_circuit" in err and "discharge_temp" in err
    assert "cannot fire" in err


def test_the_per_file_line_counts_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "pump.csv"
    _write(src, names=("flow",))
    assert cli.main(["score", str(src), "--out", str(tmp_path / "o.csv"),
                     "--warmup", "100"]) == 0
    line = capsys.readouterr().out
    assert "1 field," in line and "1 fields" not in line


def _score_folder(tmp_path: Path, tty: bool, extra: tuple[str, ...] = (),
                  stdout: list[str] | None = None) -> str:
    """stderr of ``forewarn score FOLDER`` run as a process, on a terminal or a pipe (and its
    piped stdout into ``stdout``)."""
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    for i in range(3):
        _write(folder / f"f{i}.csv", n=200, seed=i)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}
    argv = [sys.executable, "-m", "forewarn.cli", "score", str(folder), "--out",
            str(tmp_path / "out"), "--warmup", "50", *extra]
    if not tty:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                              check=True)
        return done.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=follower,
                                text=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        piped, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        if stdout is not None:
            stdout.append(piped)
    finally:
        os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_a_folder_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    piped: list[str] = []
    assert "scoring f0.csv" in _score_folder(tmp_path, tty=True, stdout=piped)
    assert [line.split(":")[0].rsplit("/", 1)[-1] for line in piped[0].splitlines()] == [
        "f0.csv", "f1.csv", "f2.csv"]  # the per-file lines stay on the piped stdout
    assert "scoring" not in _score_folder(tmp_path, tty=True, extra=("--quiet",))
    assert "scoring" not in _score_folder(tmp_path, tty=False)
