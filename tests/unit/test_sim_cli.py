"""``forewarn sim evaluate`` as a newcomer reads it (issue 24): the summary in words (the
--json keys unchanged), and progress while it streams, on one worker or several."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from forewarn.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARGV = ["sim", "evaluate", "--devices", "4", "--days", "2", "--seed", "3"]


def test_the_summary_says_words_and_the_json_keeps_its_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*ARGV, "--out", str(tmp_path / "sim"), "--json",
                 str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    for key in ("faults_causing_calls", "learn_days", "offline_cases", "device_days"):
        assert key not in out
    assert "faults the customer calls about" in out
    assert "offline cases (a simulated outage: not false)" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"faults_causing_calls", "learn_days", "offline_cases", "device_days"} <= set(report)


def _stderr_on_a_terminal(tmp_path: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forewarn.cli", *ARGV, "--out", str(tmp_path / "sim"),
             *extra], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=follower)
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
        assert proc.wait(timeout=300) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_progress_shows_on_a_terminal(tmp_path: Path, workers: str) -> None:
    assert "simulated time streamed" in _stderr_on_a_terminal(tmp_path, "--workers", workers)


def test_quiet_shows_no_progress(tmp_path: Path) -> None:
    assert "simulated time streamed" not in _stderr_on_a_terminal(tmp_path, "--quiet")
