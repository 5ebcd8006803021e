"""What ``forewarn edge run`` tells its user about the broker: connecting, cannot reach (one line
per reconnect attempt, spaced by the backoff), connected once the broker is there (issue 24)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.servers.mosquitto import Mosquitto, free_port, mosquitto_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
_RETRY = re.compile(r"^hp-9: cannot reach broker 127\.0\.0\.1:(\d+): .+; retrying in "
                    r"([0-9.]+) s$")


class _Lines:
    """Standard error of a process, line by line, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert process.stderr is not None
        self._stream = process.stderr
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Iterable[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def close(self) -> None:
        """Wait for the end of the stream (the process has ended) and close it."""
        self._thread.join(10)
        self._stream.close()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(lines)`` holds (or the deadline passes)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.lines), timeout_s)


def test_edge_run_says_it_cannot_reach_the_broker_then_that_it_connected(tmp_path) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    port = free_port()  # nobody listens yet
    config = tmp_path / "edge.toml"
    config.write_text(f"""
device_id = "hp-9"
[broker]
port = {port}
backoff_base_s = 0.2
backoff_cap_s = 1.0
[queue]
path = "{tmp_path / 'q.sqlite'}"
[source]
sample_period_s = 0.5
""")
    started = time.monotonic()
    agent = subprocess.Popen(
        [sys.executable, "-m", "forewarn.cli", "-v", "edge", "run", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = _Lines(agent)
    broker = Mosquitto(tmp_path / "mosquitto", port=port)
    try:
        assert err.wait_for(lambda lines: sum(bool(_RETRY.match(x)) for x in lines) >= 4, 60), \
            err.lines
        waited = time.monotonic() - started
        broker.start()
        assert err.wait_for(lambda lines: f"hp-9: connected to 127.0.0.1:{port}" in lines, 60), \
            err.lines
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        err.close()
        broker.close()
    ours = [line for line in err.lines if line.startswith("hp-9: ")]
    assert ours[0] == f"hp-9: connecting to 127.0.0.1:{port} as hp-9"
    connected = ours.index(f"hp-9: connected to 127.0.0.1:{port}")
    retries = [_RETRY.match(line) for line in ours[1:connected]]
    assert retries and all(retries), ours
    # one line per attempt, and an attempt only after the delay the line before announced:
    # the delays announced before the broker came up fit in the time it was down
    delays = [float(m.group(2)) for m in retries if m is not None]
    assert all(0 <= d <= 1.0 for d in delays)  # backoff_cap_s
    assert sum(delays[:3]) <= waited
    # it never connected before, so nothing may say a connection was lost
    assert not any("lost" in line for line in err.lines), err.lines
