"""``forewarn core --engine nats`` with ``[core] metrics_port``: every process serves its figures.

The supervisor (two workers, four partitions) serves the outbox and cases on ``metrics_port``,
worker *i* its partitions on ``metrics_port + 1 + i``. After telemetry is published over MQTT
the workers' figures add up to what was published, and each partition reports its lag.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.core_process import scrape
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _free_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        sockets = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str,
              alive: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if alive.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: core {alive.returncode}\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_supervisor_and_each_worker_serve_metrics(nats_server: NatsServer, tmp_path: Path,
                                                  unique_tenant: str) -> None:
    port = _free_ports(3)
    config = tmp_path / "forewarn.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
        f'[cases]\nurl = "sqlite:///{tmp_path / "cases.sqlite"}"\n'
        f'notices_jsonl = "{tmp_path / "notices.jsonl"}"\n'
        f'[core]\nengine = "nats"\nworkers = 2\nmetrics_port = {port}\n'
        'limits_file = ""\n'
        f'[nats]\nurl = "{nats_server.url}"\nstream = "M_{unique_tenant}"\n'
        f'ingress_subject = "forewarn.v1.{unique_tenant}.*.telemetry"\n'
        f'partition_prefix = "m.{unique_tenant}"\nsnapshot_bucket = "snap-{unique_tenant}"\n'
        "partitions = 4\nmax_bytes = 67108864\n"
        # static slices: each worker serves the metrics of a known slice
        'ownership = "static"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "core.log"
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "forewarn.cli", "-v", "--config", str(config), "core"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        workers = [port + 1, port + 2]
        _wait_for(lambda: all(scrape(p) is not None for p in [port, *workers]), 120,
                  "every process's /metrics", supervisor, log)
        fleet = SyntheticFleet(unique_tenant, devices=8, batch_samples=10)
        publish_mqtt(nats_server.host, nats_server.mqtt_port, fleet.batches(3))

        def total(name: str) -> float:
            figures = [scrape(p) or {} for p in workers]
            return sum(v for f in figures for k, v in f.items() if k.split("{")[0] == name)

        # a partition counts its messages once they are acknowledged, after the samples
        _wait_for(lambda: total("forewarn_samples_ingested_total") == 8 * 3 * 10
                  and total("forewarn_partition_messages_total") == 24, 90,
                  "240 samples in 24 messages counted by the workers", supervisor, log)
        assert total("forewarn_store_write_seconds_count") > 0
        lags = {k for p in workers for k in (scrape(p) or {})
                if k.startswith("forewarn_partition_lag{")}
        assert lags == {f'forewarn_partition_lag{{partition="{p}"}}' for p in range(4)}
        outbox = scrape(port)
        assert outbox is not None and "forewarn_outbox_oldest_pending_age_seconds" in outbox
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0, log.read_text()[-3000:]
