"""Back-pressure instead of silent loss: the ingest bridge holds telemetry at the broker.

``forewarn core --engine nats`` with ``[nats] bridge = true`` runs as a subprocess (a
supervisor, its ingest bridge and one worker) against real nats-server and Mosquitto, with a
stream of 1 MiB. Devices publish 1.6 MB of QoS 1 batches to Mosquitto while the worker is
paused (SIGSTOP): without back-pressure discard-old would throw away unread telemetry. The
bridge stops taking messages once the unread span passes ``high_water`` (the stream stops
growing, the rest waits at Mosquitto), raises the alert in /metrics and queues one team
notice; when the worker resumes it drains the stream, the bridge forwards the rest, and every
published sample is stored, with one notice for the end of the episode and no gap counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from core.store.embedded import EmbeddedStore
from tests.integration.core_process import scrape
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, free_port, mosquitto_binary
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DEVICES, ROUNDS, SAMPLES = 4, 40, 200  # 160 batches of ~10 kB: 1.6 MB into a 1 MiB stream


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str,
              alive: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if alive.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: core {alive.returncode}\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


def _stream_messages(url: str, stream: str) -> tuple[int, int]:
    """(messages, last sequence) of the stream (0, 0 before it exists)."""
    async def look() -> tuple[int, int]:
        nc = await nats.connect(url)
        try:
            state = (await nc.jetstream().stream_info(stream)).state
            return state.messages, state.last_seq
        except nats.js.errors.NotFoundError:
            return 0, 0
        finally:
            await nc.close()
    return asyncio.run(look())


def _gauge(port: int, name: str) -> float | None:
    figures = scrape(port)
    return None if figures is None else figures.get(name)


def test_full_stream_holds_devices_at_the_broker_and_loses_nothing(
        nats_server: NatsServer, tmp_path: Path, unique_tenant: str) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    port = free_port()
    stream = f"BP_{unique_tenant}"
    notices = tmp_path / "notices.jsonl"
    with Mosquitto(tmp_path / "mosquitto") as broker:
        config = tmp_path / "forewarn.toml"
        config.write_text(
            f'tenant = "{unique_tenant}"\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
            f'[cases]\nurl = "sqlite:///{tmp_path / "cases.sqlite"}"\n'
            f'notices_jsonl = "{notices}"\n'
            f'[core]\nengine = "nats"\nworkers = 1\nmetrics_port = {port}\n'
            'limits_file = ""\n'
            f'[nats]\nurl = "{nats_server.url}"\nstream = "{stream}"\n'
            f'ingress_subject = "forewarn.v1.{unique_tenant}.*.telemetry"\n'
            f'partition_prefix = "bp.{unique_tenant}"\nsnapshot_bucket = "snap-{unique_tenant}"\n'
            'partitions = 2\nmax_bytes = 1048576\nownership = "static"\n'
            f'bridge = true\nbridge_client_id = "bridge-{unique_tenant}"\n'
            f'bridge_subscription = "forewarn/v1/{unique_tenant}/+/telemetry"\n'
            "bridge_receive_maximum = 16\nhigh_water = 0.5\nlow_water = 0.2\n"
            "fill_check_s = 0.2\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
        env["PYTHONPATH"] = str(ROOT)
        log = tmp_path / "core.log"
        with log.open("wb") as out:
            core = subprocess.Popen(
                [sys.executable, "-m", "forewarn.cli", "-v", "--config", str(config), "core"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # the worker serves /metrics once its partitions are consumed
            _wait_for(lambda: scrape(port + 1) is not None
                      and _gauge(port, "forewarn_ingest_backpressure") == 0.0, 60,
                      "worker and bridge up", core, log)
            found = re.search(rb"worker 0 \(pid (\d+)\)", log.read_bytes())
            assert found, log.read_text()[-3000:]
            worker = int(found.group(1))
            os.kill(worker, signal.SIGSTOP)  # the worker drains nothing from now on
            try:
                fleet = SyntheticFleet(unique_tenant, devices=DEVICES, batch_samples=SAMPLES)
                published = publish_mqtt(broker.host, broker.port, fleet.batches(ROUNDS))
                _wait_for(lambda: _gauge(port, "forewarn_ingest_backpressure") == 1.0, 20,
                          "back-pressure", core, log)
                held, _ = _stream_messages(nats_server.url, stream)
                time.sleep(1.0)  # the bridge takes nothing more while the worker is stopped
                assert _stream_messages(nats_server.url, stream)[0] == held
                assert held < DEVICES * ROUNDS  # the rest waits at Mosquitto
            finally:
                os.kill(worker, signal.SIGCONT)

            def stored() -> int:
                with EmbeddedStore(tmp_path / "telemetry.sqlite") as store:
                    return store.count_samples(unique_tenant)

            _wait_for(lambda: stored() == published
                      and _gauge(port, "forewarn_ingest_backpressure") == 0.0, 60,
                      "every sample stored and the episode over", core, log)
            assert _stream_messages(nats_server.url, stream)[1] == DEVICES * ROUNDS
            metrics = scrape(port) or {}
            assert metrics["forewarn_ingest_backpressure_episodes_total"] == 1.0
            assert metrics["forewarn_ingest_forwarded_total"] == DEVICES * ROUNDS
            assert not [k for k in metrics if k.startswith("forewarn_ingest_gap_batches")]

            def bridge_notices() -> list[str]:  # the fleet's old timestamps open cases too
                lines = notices.read_text().splitlines() if notices.exists() else []
                return sorted(kind for kind in (json.loads(line)["kind"] for line in lines)
                              if kind.startswith("backpressure"))

            _wait_for(lambda: len(bridge_notices()) >= 2, 20, "two team notices", core, log)
            time.sleep(0.5)  # a third would show now
            kinds = bridge_notices()
        finally:
            core.send_signal(signal.SIGTERM)
            code = core.wait(60)
    assert stored() == published  # nothing lost, nothing twice
    assert kinds == ["backpressure", "backpressure_end"], kinds
    assert code == 0, log.read_text()[-3000:]
