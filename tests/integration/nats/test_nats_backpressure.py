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
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nats
import numpy as np
import pytest

from core.store.embedded import EmbeddedStore
from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import Batcher
from edge.queue import DiskQueue
from edge.uplink import BrokerConfig, Uplink
from tests.integration.core_process import scrape
from tests.integration.nats.fleet import FIELDS, SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, free_port, mosquitto_binary
from tests.servers.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DEVICES, ROUNDS, SAMPLES = 4, 40, 200  # 160 batches of ~10 kB: 1.6 MB into a 1 MiB stream
AGENT_SAMPLES = 2000  # the edge agent's, in its disk queue


class EdgeDevice(threading.Thread):
    """An edge agent (disk queue, MQTT 5 uplink) on a loop of its own, connected while the
    bridge holds back: what it did then is in :attr:`while_held`."""

    def __init__(self, workdir: Path, tenant: str, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.workdir = workdir
        self.tenant = tenant
        self.broker = BrokerConfig(host, port)
        self.observed = threading.Event()
        self.while_held: dict[str, int] = {}
        self.queued_before = 0
        self.drained = False

    def run(self) -> None:
        # SQLite objects belong to the thread that made them: the agent is made here
        queue = DiskQueue(self.workdir / "edge-queue.sqlite")
        try:
            agent = EdgeAgent(self.tenant, Batcher("edge-1", "boot1", "heat_pump", FIELDS,
                                                   max_samples=200), queue=queue)
            t = 1.72e9 + 10.0 * np.arange(AGENT_SAMPLES, dtype=np.float64)
            values = np.random.default_rng(5).normal(50, 1, (AGENT_SAMPLES, 5))
            agent.add_samples(t, values.astype(np.float64))
            agent.close()  # the last, partial batch too
            self.queued_before = queue.depth
            asyncio.run(self._send(agent, queue))
        finally:
            queue.close()

    async def _send(self, agent: EdgeAgent, queue: DiskQueue) -> None:
        async with Uplink(agent, self.broker, backoff=Backoff(0.05, 0.5)) as uplink:
            await asyncio.wait_for(uplink.connected.wait(), 10)
            await asyncio.sleep(1.5)  # time to send, were it not held
            self.while_held = {"held": int(uplink.held), "holds": uplink.holds,
                               "acked": uplink.records_acked, "queued": queue.depth}
            self.observed.set()
            self.drained = await uplink.wait_drained(60)


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
                _wait_for(lambda: _gauge(port, "forewarn_ingest_backpressure") == 1.0
                          and _gauge(port, "forewarn_ingest_device_flow_messages_total") == 1.0,
                          20, "back-pressure, and the agents told to hold", core, log)
                held, _ = _stream_messages(nats_server.url, stream)
                device = EdgeDevice(tmp_path, unique_tenant, broker.host, broker.port)
                device.start()  # connects while the bridge holds back: told to hold too
                assert device.observed.wait(20)
                # the bridge took nothing more while the worker was stopped
                assert _stream_messages(nats_server.url, stream)[0] == held
                assert held < DEVICES * ROUNDS  # the rest waits at Mosquitto
                # the agent sent nothing: its batches wait in its disk queue
                assert device.queued_before > 0
                assert device.while_held == {"held": 1, "holds": 1, "acked": 0,
                                             "queued": device.queued_before}
            finally:
                os.kill(worker, signal.SIGCONT)
            published += AGENT_SAMPLES

            def stored() -> int:
                with EmbeddedStore(tmp_path / "telemetry.sqlite") as store:
                    return store.count_samples(unique_tenant)

            try:
                _wait_for(lambda: stored() == published
                          and _gauge(port, "forewarn_ingest_backpressure") == 0.0, 60,
                          "every sample stored and the episode over", core, log)
            except AssertionError as exc:
                raise AssertionError(f"stored {stored()} of {published}: {exc}") from None
            device.join(60)
            assert device.drained  # released when the episode ended
            metrics = scrape(port) or {}
            messages = DEVICES * ROUNDS + device.queued_before
            # the agent's status messages (birth, goodbye) take the bridge too
            statuses = int(metrics["forewarn_ingest_lifecycle_forwarded_total"])
            assert _stream_messages(nats_server.url, stream)[1] == messages + statuses
            # the held backlog, released at once, may fill the stream past high_water again
            # before the worker reads it: another episode, with its own pair of notices
            episodes = int(metrics["forewarn_ingest_backpressure_episodes_total"])
            assert 1 <= episodes <= 3
            assert metrics["forewarn_ingest_forwarded_total"] == messages
            assert not [k for k in metrics if k.startswith("forewarn_ingest_gap_batches")]

            def bridge_notices() -> list[str]:  # the fleet's old timestamps open cases too
                lines = notices.read_text().splitlines() if notices.exists() else []
                return sorted(kind for kind in (json.loads(line)["kind"] for line in lines)
                              if kind.startswith("backpressure"))

            _wait_for(lambda: len(bridge_notices()) >= 2 * episodes, 20,
                      "two team notices an episode", core, log)
            time.sleep(0.5)  # a third would show now
            kinds = bridge_notices()
        finally:
            core.send_signal(signal.SIGTERM)
            code = core.wait(60)
    assert stored() == published  # nothing lost, nothing twice
    assert kinds == ["backpressure"] * episodes + ["backpressure_end"] * episodes, kinds
    assert code == 0, log.read_text()[-3000:]
