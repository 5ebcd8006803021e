"""``forewarn core`` and ``forewarn serve`` started from the documented example config, with a
newcomer's or an operator's mistake in it: each is one line naming the key, exit code 2, no
traceback (a port in use, a state folder, store or notices file that cannot be made). A broker
that is not there yet is no mistake: core says which broker it cannot reach and keeps trying.

Each case is a real process on a copy of ``config/`` (the example's relative file names are
relative to its folder), with the mistake given as a ``FOREWARN_*`` variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "forewarn.example.toml"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command(config: Path, *argv: str, **variables: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update(PYTHONPATH=str(ROOT), FOREWARN_BROKER__EMBEDDED="false",
               FOREWARN_MQTT__PORT=str(_dead_port()), **variables)
    return [sys.executable, "-m", "forewarn.cli", "--config", str(config), *argv], env


def _one_line_error(config: Path, *argv: str, **variables: str) -> str:
    command, env = _command(config, *argv, **variables)
    done = subprocess.run(command, cwd=config.parent, env=env, capture_output=True, text=True,
                          timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith("forewarn: error: "), done.stderr
    return lines[0]


def test_core_metrics_port_in_use(config: Path, busy_port: int) -> None:
    line = _one_line_error(config, "core", FOREWARN_CORE__METRICS_PORT=str(busy_port))
    assert line.endswith(f"[core] metrics_port) cannot listen on 127.0.0.1:{busy_port}: "
                         "the port is in use"), line


def test_core_ingest_http_port_in_use(config: Path, busy_port: int) -> None:
    line = _one_line_error(config, "core", FOREWARN_CORE__INGEST_HTTP_PORT=str(busy_port))
    assert f"[core] ingest_http_port) cannot listen on 127.0.0.1:{busy_port}" in line, line


@pytest.mark.parametrize(("variable", "key"), [
    ("FOREWARN_CORE__STATE_DIR", "[core] state_dir"),
    ("FOREWARN_STORE__PATH", "[store] path"),
    ("FOREWARN_CASES__NOTICES_JSONL", "[cases] notices_jsonl"),
], ids=["state-dir", "store-path", "notices-jsonl"])
def test_core_a_path_that_cannot_be_made(config: Path, variable: str, key: str) -> None:
    # a file where a folder must be: fails for root too (a read-only folder would not)
    inside_a_file = config / "below-a-file"
    line = _one_line_error(config, "core", **{variable: str(inside_a_file)})
    assert f"{key} {inside_a_file}" in line and ("Not a directory" in line
                                                 or "File exists" in line), line


def test_serve_port_in_use_says_so_before_saying_where_it_serves(
        config: Path, busy_port: int) -> None:
    command, env = _command(config, "serve", "--port", str(busy_port),
                            FOREWARN_CASES__URL=f"sqlite:///{config.parent / 'cases.sqlite'}")
    done = subprocess.run(command, cwd=config.parent, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"forewarn: error: the console ([serve] host/port) cannot "
                                   f"listen on 127.0.0.1:{busy_port}: the port is in use")
    assert "console on http" not in done.stdout, done.stdout


def test_core_says_which_broker_it_cannot_reach_and_stops_on_sigterm(config: Path) -> None:
    command, env = _command(config, "core")
    port = env["FOREWARN_MQTT__PORT"]
    core = subprocess.Popen(command, cwd=config.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert core.stderr is not None
        deadline = time.monotonic() + 60.0
        line = ""
        while time.monotonic() < deadline and "cannot reach" not in line:
            line = core.stderr.readline()
            assert line or core.poll() is None, "core ended before saying anything"
        assert f"cannot reach the MQTT broker at 127.0.0.1:{port} (" in line, line
        assert "retrying in" in line and "Traceback" not in line
        core.send_signal(signal.SIGTERM)
        _, err = core.communicate(timeout=30)
    finally:
        if core.poll() is None:
            core.kill()
            core.wait()
    assert core.returncode == 0, err
    assert "Traceback" not in err, err


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    # `forewarn rules show FILE | head -1`: the pipe's reading end is closed before any output
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "forewarn.cli", "rules", "show",
             str(ROOT / "config" / "rules" / "heat_pump.yaml")],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert done.stderr == "", done.stderr


def test_serve_a_store_path_that_cannot_be_made(config: Path) -> None:
    inside_a_file = config / "telemetry.sqlite"
    line = _one_line_error(config, "serve", "--port", "0",
                           FOREWARN_STORE__PATH=str(inside_a_file))
    assert f"[store] path {inside_a_file}: " in line, line


def test_serve_an_unreachable_case_database_is_named_without_its_password(config: Path) -> None:
    url = f"postgresql+psycopg://forewarn:s3cret@127.0.0.1:{_dead_port()}/cases"
    line = _one_line_error(config, "serve", "--port", "0", FOREWARN_CASES__URL=url)
    assert "cannot open the case database postgresql+psycopg://forewarn:***@127.0.0.1:" in line
    assert "s3cret" not in line and "sqlalche.me" not in line, line


def test_core_on_nats_says_which_server_it_cannot_reach_in_one_line(config: Path) -> None:
    url = f"nats://127.0.0.1:{_dead_port()}"
    command, env = _command(config, "core", "--engine", "nats", "--workers", "1",
                            "--nats-url", url)
    # a session of its own: killing its group ends the supervisor and its worker alike
    core = subprocess.Popen(command, cwd=config.parent, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    said: list[str] = []
    try:
        assert core.stderr is not None
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not any("cannot reach NATS" in x for x in said):
            line = core.stderr.readline()
            assert line or core.poll() is None, f"core ended: {said}"
            said.append(line)
    finally:
        # how the supervisor stops is forewarn/workers.py's tests' business
        os.killpg(core.pid, signal.SIGKILL)
        core.communicate(timeout=30)
    assert f"cannot reach NATS at {url} (" in said[-1] and said[-1].rstrip().endswith(
        "; retrying"), said
    assert not any("Traceback" in line for line in said), said


def test_core_a_misspelt_key_names_the_key_it_is_closest_to(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    assert "\ndedup_window = " in text
    config.write_text(text.replace("\ndedup_window = ", "\ndedup_windw = "), encoding="utf-8")
    line = _one_line_error(config, "core")
    assert line == (f"forewarn: error: {config}: core.dedup_windw: Extra inputs are not "
                    "permitted (did you mean dedup_window?)"), line
