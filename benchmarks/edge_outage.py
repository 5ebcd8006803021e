"""Does the edge agent lose anything when the broker goes away and an agent is killed?

A real mosquitto (password file + ``%u`` ACL from deploy/mosquitto/acl) is started on a free
127.0.0.1 port. A fleet of simulated agents (``forewarn fleet``, one process) and one more agent
(``forewarn edge run``, its own process) stream telemetry. The broker is stopped for
``--outage`` seconds and restarted; the lone agent is killed with SIGKILL while the broker is
down and again just after it returns (while it is catching up), and restarted each time. Then
everyone is stopped cleanly and drains.

A subscriber with a persistent session (as core's ingest would be) counts unique
``(device, boot, seq, sample)`` keys and the batches it saw twice (``duplicates_dropped``: what
core's dedup by ``(device, boot, seq)`` drops). ``published`` is what the agents accepted (the
disk queues' counters, kept across the kills). ``lost = published - dropped_by_cap -
received_unique``; the target is 0.

    .venv/bin/python benchmarks/edge_outage.py            # 12 devices, 30 s outage
    .venv/bin/python benchmarks/edge_outage.py --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_broker import Mosquitto

from edge.queue import DiskQueue
from edge.schema import TelemetryBatch, decode_payload
from forewarn.devices.passwords import add_device

__all__ = ["OutageResult", "run_outage"]

ROOT = Path(__file__).resolve().parents[1]
ACL = ROOT / "deploy" / "mosquitto" / "acl"
DEVICE_PASSWORD = "bench-device-secret"
CORE_PASSWORD = "bench-core-secret"


@dataclass
class OutageResult:
    """What one run measured."""

    devices: int
    rate_hz: float
    outage_s: float
    duration_s: float
    agent_kills: int
    published: int
    received_unique: int
    lost: int
    duplicates_dropped: int
    dropped_by_cap: int
    still_queued: int
    max_queue_bytes: int
    max_total_queue_bytes: int


class _Counter:
    """The receiving side: a persistent-session subscriber that counts unique samples."""

    def __init__(self, port: int) -> None:
        self.batches: set[tuple[str, str, int]] = set()
        self.samples = 0
        self.duplicates = 0
        self.devices: set[str] = set()
        #: newest sample time seen per device (sim devices stamp samples with wall time)
        self.newest: dict[str, float] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="bench-core", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("forewarn-core", CORE_PASSWORD)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False,
                            properties=properties)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        client.subscribe("forewarn/v1/+/+/telemetry", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        batch = TelemetryBatch.model_validate_json(
            decode_payload(message.payload, getattr(message, "properties", None)))
        key = (batch.device_id, batch.boot_id, batch.seq)
        with self.lock:
            if key in self.batches:
                self.duplicates += 1
                return
            self.batches.add(key)
            self.samples += batch.n_samples
            self.devices.add(batch.device_id)
            self.newest[batch.device_id] = max(self.newest.get(batch.device_id, 0.0),
                                               batch.t[-1])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _queue_bytes(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as db:
            return int(db.execute("SELECT coalesce(sum(size), 0) FROM records").fetchone()[0])
    except sqlite3.Error:
        return 0


def _queue_counters(path: Path) -> dict[str, int]:
    """The queue's counters (open it only once its agent has exited)."""
    with DiskQueue(path) as queue:
        return asdict(queue.stats())


def _wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _solo_config(work: Path, port: int, device_id: str, index: int, rate_hz: float) -> Path:
    config = work / f"{device_id}.toml"
    config.write_text(f"""
tenant = "bench"
device_id = "{device_id}"
status_interval_s = 5.0
drain_timeout_s = 60.0
[broker]
port = {port}
username = "{device_id}"
password = "{DEVICE_PASSWORD}"
backoff_base_s = 0.2
backoff_cap_s = 5.0
[batching]
max_samples = 50
max_age_s = 1.0
[queue]
path = "{work / 'queues' / (device_id + '.sqlite')}"
[source]
kind = "sim"
sample_period_s = {1.0 / rate_hz}
index = {index}
""")
    return config


def run_outage(devices: int = 12, rate_hz: float = 10.0, warmup_s: float = 10.0,
               outage_s: float = 30.0, tail_s: float = 10.0,
               verbose: bool = False) -> OutageResult:
    """Run the scenario once; see the module docstring."""
    started = time.monotonic()

    def phase(what: str) -> None:
        if verbose:
            print(f"{time.monotonic() - started:7.1f} s  {what}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="fw-outage-") as tmp:
        work = Path(tmp)
        passwd = work / "passwd"
        fleet_size = devices - 1
        solo_id = f"hp-{fleet_size:04d}"
        for index in range(devices):
            add_device(passwd, f"hp-{index:04d}", DEVICE_PASSWORD, iterations=101)
        add_device(passwd, "forewarn-core", CORE_PASSWORD, iterations=101)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with Mosquitto(password_file=passwd, acl_file=ACL) as broker:
            counter = _Counter(broker.port)
            fleet = subprocess.Popen(
                [sys.executable, "-m", "forewarn.commands.fleet", "--devices", str(fleet_size),
                 "--port", str(broker.port), "--password", DEVICE_PASSWORD,
                 "--tenant", "bench", "--queue-dir", str(work / "queues"),
                 "--rate", str(rate_hz), "--batch-samples", "50", "--batch-age", "1",
                 "--status-interval", "5", "--drain-timeout", "60", "--backoff-cap", "5"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            )
            solo_cmd = [sys.executable, "-m", "forewarn.commands.edge", "run", "--config",
                        str(_solo_config(work, broker.port, solo_id, fleet_size, rate_hz))]
            solo = subprocess.Popen(solo_cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            queues = [work / "queues" / f"hp-{i:04d}.sqlite" for i in range(devices)]
            peaks = {"one": 0, "all": 0}
            stop_sampling = threading.Event()

            def sample_queues() -> None:
                while not stop_sampling.wait(0.25):
                    sizes = [_queue_bytes(q) for q in queues if q.exists()]
                    peaks["one"] = max(peaks["one"], *sizes, 0)
                    peaks["all"] = max(peaks["all"], sum(sizes))

            sampler = threading.Thread(target=sample_queues, daemon=True)
            sampler.start()
            kills = 0
            try:
                _wait_until(lambda: len(counter.devices) == devices, 60 + warmup_s,
                            "every device's first batch")
                phase("every device streaming")
                time.sleep(warmup_s)  # the scenario's timeline: stream this long
                broker.stop()
                outage_started = time.monotonic()
                phase("broker stopped")
                time.sleep(outage_s / 2)
                solo.kill()  # SIGKILL while offline: its queue holds the outage so far
                solo.wait()
                kills += 1
                solo = subprocess.Popen(solo_cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
                phase("agent killed -9 and restarted (offline)")
                time.sleep(max(0.0, outage_s - (time.monotonic() - outage_started)))
                broker.start()
                outage = time.monotonic() - outage_started
                phase("broker restarted")
                time.sleep(0.5)
                solo.kill()  # SIGKILL again while it catches up: records in flight
                solo.wait()
                kills += 1
                solo = subprocess.Popen(solo_cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
                restarted_at = time.time()
                phase("agent killed -9 and restarted (catching up)")
                # a SIGTERM before the agent installed its handler would just kill it again
                _wait_until(lambda: counter.newest.get(solo_id, 0.0) > restarted_at, 60,
                            "the restarted agent's first new sample")
                phase("restarted agent streaming again")
                time.sleep(tail_s)
                for process in (fleet, solo):
                    process.send_signal(signal.SIGTERM)
                for process in (fleet, solo):
                    process.wait(120)
                phase("agents stopped and drained")
            finally:
                for process in (fleet, solo):
                    if process.poll() is None:
                        process.kill()
                        process.wait()
                stop_sampling.set()
                sampler.join()
            totals = {"accepted_samples": 0, "dropped_samples": 0, "acked_samples": 0}
            for queue in queues:
                for key, value in _queue_counters(queue).items():
                    if key in totals:
                        totals[key] += value
            published = totals["accepted_samples"]
            dropped = totals["dropped_samples"]
            still_queued = published - dropped - totals["acked_samples"]
            expected = published - dropped - still_queued
            with contextlib.suppress(TimeoutError):  # what did not arrive is reported as lost
                _wait_until(lambda: counter.samples >= expected, 30, "the subscriber")
            counter.close()
            phase("subscriber done")
    with counter.lock:
        received, duplicates = counter.samples, counter.duplicates
    return OutageResult(
        devices=devices, rate_hz=rate_hz, outage_s=round(outage, 2),
        duration_s=round(time.monotonic() - started, 1), agent_kills=kills,
        published=published, received_unique=received,
        lost=published - dropped - received, duplicates_dropped=duplicates,
        dropped_by_cap=dropped, still_queued=still_queued,
        max_queue_bytes=peaks["one"], max_total_queue_bytes=peaks["all"],
    )


def main() -> int:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--rate", type=float, default=10.0, help="samples/s per device")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--tail", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print the phases to stderr")
    args = parser.parse_args()
    result = run_outage(args.devices, args.rate, args.warmup, args.outage, args.tail,
                        verbose=args.verbose)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        for key, value in asdict(result).items():
            print(f"{key:>22}  {value}")
    return 0 if result.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
