"""``forewarn demo`` as a newcomer runs it (issue 24): a busy broker port costs no earlier run
and prints one line, ``mqtt.port = 0`` works, the output has no traceback, and case numbers
repeat with the seed, as the README shows them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forewarn.errors import ConfigError
from forewarn.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port someone else listens on (another broker)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _demo_command(*argv: str, port: int | None = None,
                  config: Path | None = None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FOREWARN_MQTT__PORT", None)
    if port is not None:
        env["FOREWARN_MQTT__PORT"] = str(port)
    head = ["--config", str(config)] if config is not None else []
    return [sys.executable, "-m", "forewarn.cli", *head, "demo", "--quiet", *argv], env


def _demo(tmp_path: Path, *argv: str, port: int | None = None,
          config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command, env = _demo_command(*argv, port=port, config=config)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def _start_demo(tmp_path: Path, *argv: str) -> subprocess.Popen[str]:
    command, env = _demo_command(*argv)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _previous_run(tmp_path: Path) -> Path:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "cases.sqlite").write_bytes(b"the previous run")
    return out


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "amqtt" not in text, text


def test_a_busy_port_given_with_port_is_one_line_and_keeps_the_previous_run(
    tmp_path: Path, busy_port: int,
) -> None:
    out = _previous_run(tmp_path)
    done = _demo(tmp_path, "--devices", "2", "--hours", "2", "--out", str(out),
                 "--port", str(busy_port))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and str(busy_port) in done.stderr
    _no_traceback(done)
    assert (out / "cases.sqlite").read_bytes() == b"the previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no half-written run


def test_a_busy_configured_port_moves_the_broker_and_replaces_the_run_at_the_end(
    tmp_path: Path, busy_port: int,
) -> None:
    out = _previous_run(tmp_path)
    done = _demo(tmp_path, "--devices", "2", "--hours", "2", "--out", str(out),
                 port=busy_port)
    assert done.returncode == 0, done.stderr
    assert f"{busy_port} is in use" in done.stderr
    _no_traceback(done)
    assert (out / "cases.sqlite").read_bytes() != b"the previous run"
    assert (out / "ground_truth.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_port_zero_in_the_config_picks_a_free_port(tmp_path: Path) -> None:
    config = tmp_path / "forewarn.toml"
    config.write_text(f'[mqtt]\nport = 0\n[cases]\nrules_file = '
                      f'"{ROOT / "config/rules/heat_pump.yaml"}"\n')
    assert load_settings(config).mqtt.port == 0
    done = _demo(tmp_path, "--devices", "2", "--hours", "2", "--out", str(tmp_path / "d"),
                 config=config)
    assert done.returncode == 0, done.stderr
    _no_traceback(done)


def test_port_zero_needs_the_embedded_broker(tmp_path: Path) -> None:
    config = tmp_path / "forewarn.toml"
    config.write_text("[broker]\nembedded = false\n[mqtt]\nport = 0\n")
    with pytest.raises(ConfigError, match="embedded broker"):
        load_settings(config)


def test_two_runs_with_one_seed_number_the_same_cases_and_print_no_traceback(
    tmp_path: Path,
) -> None:
    # the two runs side by side (each on a free port of its own): each is mostly one core's work
    running = {name: _start_demo(tmp_path, "--port", "0", "--out", str(tmp_path / name),
                                 "--summary-json", str(tmp_path / f"{name}.json"))
               for name in ("one", "two")}
    runs = []
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=600)
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert done.returncode == 0, done.stderr
        _no_traceback(done)
        cases = json.loads((tmp_path / f"{name}.json").read_text())["cases"]
        runs.append([(c["case_id"], c["device_id"], c["opened_at"]) for c in cases])
    assert len(runs[0]) >= 3, "the default demo opens several cases"
    assert runs[0] == runs[1]
    _as_the_readme_shows(json.loads((tmp_path / "one.json").read_text()))


def _as_the_readme_shows(summary: dict[str, Any]) -> None:
    """The README's "What the demo shows" is this run's summary: its figures and first case."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("## What the demo shows", 1)[1].split("```")[1]
    rows = [[cell.strip() for cell in line.strip("│").split("│")]
            for line in shown.splitlines() if line.startswith("│")]
    figures = {row[0]: row[1] for row in rows if len(row) == 2}
    first = summary["cases"][0]
    expected = {
        "devices": str(summary["devices"]),
        "samples published": str(summary["samples_published"]),
        "samples ingested": str(summary["samples_ingested"]),
        "samples lost": str(summary["samples_lost"]),
        "faults injected": str(summary["faults_injected"]),
        "cases opened": str(summary["cases_opened"]),
        "notifications delivered": str(summary["notifications_sent"]),
        "faults notified before the customer's call":
            f"{summary['faults_notified_before_call']} of {summary['faults_with_call']} that call",
        "false cases": str(summary["false_cases"]),
    }
    assert figures == expected, "README.md's demo figures are not what the demo prints"
    case_row = next(row for row in rows if row[0] == f"FW-{first['case_id']}")
    assert case_row == [f"FW-{first['case_id']}", first["device_id"],
                        time.strftime("%m-%d %H:%M", time.gmtime(first["opened_at"])),
                        first["fault_kind"], f"{first['lead_time_s'] / 3600:.1f} h"], case_row
