"""A throwaway Mosquitto broker (Debian ``mosquitto``) for tests and benchmarks.

It listens on a free 127.0.0.1 port with a config file and data dir of its own, and can be
stopped and started again on the same port (the outage tests do that).

    with Mosquitto(tmp_path) as broker:
        connect to broker.host, broker.port
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO

from forewarn.ports import free_port
from tests.servers._process import stop_process, wait_listening

__all__ = ["Mosquitto", "free_port", "mosquitto_binary"]


def mosquitto_binary() -> str | None:
    """Path of the ``mosquitto`` executable, or None when it is not installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


class Mosquitto:
    """One mosquitto process; ``extra_config`` lines are appended to its config file."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "",
                 allow_anonymous: bool = True) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto not installed (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.extra_config = extra_config
        self.allow_anonymous = allow_anonymous
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def config_path(self) -> Path:
        """The config file the broker runs with."""
        return self.workdir / "mosquitto.conf"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until the port accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.workdir / 'data'}/\n"
            "max_queued_messages 100000\n"
            f"{self.extra_config}\n"
        )
        if self._log is None:
            self._log = (self.workdir / "mosquitto.log").open("ab")
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)], stdout=self._log, stderr=self._log
        )
        try:
            wait_listening(self._process, self.host, [self.port], timeout_s, "mosquitto",
                           self.workdir / "mosquitto.log")
        except RuntimeError:
            self._process = None
            raise

    def stop(self) -> None:
        """Stop the broker (it keeps its port and data for a later start)."""
        stop_process(self._process)
        self._process = None

    def close(self) -> None:
        """Stop and release the log file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
