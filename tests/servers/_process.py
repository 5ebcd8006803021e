"""What every throwaway test server shares: wait until it listens, stop it (or kill it).

    process = subprocess.Popen([...])
    wait_listening(process, "127.0.0.1", [port], 10.0, "mosquitto", log_path)
    stop_process(process)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["stop_process", "wait_listening"]


def wait_listening(process: subprocess.Popen[bytes], host: str, ports: Sequence[int],
                   timeout_s: float, name: str, log_path: Path) -> None:
    """Return once every port accepts a TCP connection; raise naming the log if the process dies
    or the deadline passes (the process is stopped then)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log_path}")
        try:
            with socket.create_connection((host, pending[0]), timeout=0.2):
                pending.pop(0)
        except OSError:
            time.sleep(0.02)
    if pending:
        stop_process(process)
        raise RuntimeError(f"{name} did not listen on {pending} within {timeout_s} s")


def stop_process(process: subprocess.Popen[bytes] | None, kill: bool = False,
                 timeout_s: float = 10.0) -> None:
    """SIGTERM (or SIGKILL with ``kill``) and wait; SIGKILL if it does not stop in time."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
