"""A real mosquitto for the edge benchmarks and tests: own temp dir, own config, 127.0.0.1 only.

>>> with Mosquitto() as broker:          # doctest: +SKIP
...     broker.port > 0
...     broker.stop(); broker.start()     # an outage, same port, sessions kept on disk
True
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from forewarn.ports import free_port

__all__ = ["MOSQUITTO", "Mosquitto", "free_port"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """One mosquitto process; :meth:`stop` and :meth:`start` again simulate an outage.

    ``password_file``/``acl_file`` switch authentication on (anonymous clients are refused);
    ``extra`` lines go into the config as they are. Persistence is on, so persistent sessions and
    retained messages outlive a restart, as on a production broker.
    """

    def __init__(self, password_file: Path | None = None, acl_file: Path | None = None,
                 extra: tuple[str, ...] = (), port: int | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fw-mosquitto-"))
        self.port = port or free_port()
        self.config = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if password_file else 'true'}",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 5",
            "max_queued_messages 1000000",
            "max_inflight_messages 100",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "user root",
        ]
        if password_file:
            lines.append(f"password_file {password_file}")
        if acl_file:
            lines.append(f"acl_file {acl_file}")
        self.config.write_text("\n".join([*lines, *extra]) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the broker process is up."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start (or restart) and wait until the port accepts connections."""
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)  # polling the port until the deadline
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} in {timeout_s} s")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: mosquitto saves sessions and retained messages)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log_text(self) -> str:
        """What mosquitto logged (for failure messages)."""
        return self.log.read_text() if self.log.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
