"""A small synthetic fleet for the NATS tests and benchmarks: batches as MQTT payloads.

Each device has five fields around a level of its own with noise; a faulty device's fields
jump by ``jump`` standard deviations from sample ``fault_at`` on. Payloads are the columnar JSON
of :class:`edge.schema.TelemetryBatch`, built with numpy and ``json`` (fast enough to publish
tens of thousands of samples a second).

>>> fleet = SyntheticFleet("acme", devices=2, batch_samples=3, faulty=1, fault_at=3)
>>> topic, payload, n = next(fleet.batches(rounds=1))
>>> topic, n, payload[:30]
('forewarn/v1/acme/d0000/telemetry', 3, b'{"v":1,"device_id":"d0000","bo')
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.schema import telemetry_topic

__all__ = ["FIELDS", "SyntheticFleet", "publish_mqtt"]

FIELDS = ("compressor_current", "discharge_temp", "suction_pressure", "flow_temp", "power")


#: ``[detector]`` for a forewarn.toml serving this synthetic fleet: its faults jump within the
#: device models' day of learning, so run the single-series keys of
#: ``DetectorConfig.nab_reference()`` (onsets only), whose warm-up is 300 samples
SINGLE_SERIES_DETECTOR_TOML = (
    "[detector]\nwarmup = 300\nquiet = 200\nregression_weight = 0.0\nlevel_weight = 1.0\n"
    "seasonal_weight = 1.0\ntransition_weight = 1.0\nmultivariate_weight = 1.0\n"
    "extreme_weight = 1.0\nsubspace_weight = 0.0\nfield_level_weight = 0.0\nlevel_quiet = 200\n"
    "likelihood_after_warmup = false\nlikelihood_var_floor = 0.006\n"
    "likelihood_warmup = 300\nlikelihood_short_window = 0\nquiet_s = 0.0\n"
)


class SyntheticFleet:
    """Devices ``d0000``… of one tenant; the first ``faulty`` devices develop a fault."""

    def __init__(self, tenant: str, devices: int, batch_samples: int = 50,
                 period_s: float = 10.0, faulty: int = 0, fault_at: int = 400,
                 jump: float = 12.0, seed: int = 1, start_t: float = 1.7e9,
                 boot_id: str = "boot1") -> None:
        self.tenant = tenant
        self.device_ids = [f"d{i:04d}" for i in range(devices)]
        self.batch_samples = batch_samples
        self.period_s = period_s
        self.faulty = faulty
        self.fault_at = fault_at
        self.jump = jump
        self.rng = np.random.default_rng(seed)
        self.start_t = start_t
        self.boot_id = boot_id
        self.levels = self.rng.uniform(20.0, 80.0, (devices, len(FIELDS)))
        self.sent_rounds = 0

    def batches(self, rounds: int) -> Iterator[tuple[str, bytes, int]]:
        """(topic, payload, samples) for ``rounds`` more batches of every device, round-robin."""
        n, k = self.batch_samples, len(FIELDS)
        for _ in range(rounds):
            r = self.sent_rounds
            index = r * n + np.arange(n)
            t = (self.start_t + index * self.period_s).tolist()
            for d, device_id in enumerate(self.device_ids):
                values = self.levels[d] + self.rng.normal(0.0, 1.0, (n, k))
                if d < self.faulty:
                    values[index >= self.fault_at] += self.jump
                body = {"v": 1, "device_id": device_id, "boot_id": self.boot_id, "seq": r,
                        "product": "heat_pump", "fields": list(FIELDS), "t": t,
                        "values": np.round(values, 3).tolist()}
                payload = json.dumps(body, separators=(",", ":")).encode()
                yield telemetry_topic(self.tenant, device_id), payload, n
            self.sent_rounds += 1


def publish_mqtt(host: str, port: int, batches: Iterable[tuple[str, bytes, int]],
                 inflight: int = 500, timeout_s: float = 60.0) -> int:
    """Publish ``batches`` with QoS 1 over MQTT 3.1.1 (one connection); return samples sent.

    Returns once the broker acknowledged every message (PUBACK).
    """
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"fleet-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    samples = 0
    try:
        infos = []
        for topic, payload, n in batches:
            infos.append(client.publish(topic, payload, qos=1))
            samples += n
        for info in infos:
            info.wait_for_publish(timeout_s)
    finally:
        client.loop_stop()
        client.disconnect()
    return samples
