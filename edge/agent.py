"""The device agent: samples → batches → MQTT, QoS 1.

>>> from edge.batcher import Batcher
>>> sent = []
>>> agent = EdgeAgent("acme", Batcher("hp-1", "b1", "heat_pump", ("a",), max_samples=2),
...                   lambda topic, payload: sent.append(topic))
>>> import numpy as np
>>> agent.add_samples(np.array([0.0, 1.0, 2.0]), np.ones((3, 1)))
>>> agent.close()
>>> sent, agent.samples_sent
(['forewarn/v1/acme/hp-1/telemetry', 'forewarn/v1/acme/hp-1/telemetry'], 3)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from edge.batcher import Batcher
from edge.schema import TelemetryBatch, telemetry_topic

__all__ = ["EdgeAgent", "PublishFn"]

#: sends one payload to one topic (QoS 1), e.g. :meth:`edge.publisher.MqttPublisher.publish`
PublishFn = Callable[[str, bytes], None]


class EdgeAgent:
    """Batches a device's samples and publishes each batch as it completes."""

    def __init__(self, tenant: str, batcher: Batcher, publish: PublishFn) -> None:
        self.tenant = tenant
        self.batcher = batcher
        self._publish = publish
        self._topic = telemetry_topic(tenant, batcher.device_id)
        self.samples_sent = 0
        self.batches_sent = 0

    def add_samples(self, t: NDArray[np.float64], values: NDArray[np.float64]) -> None:
        """Accept samples; publish the batches they complete."""
        for batch in self.batcher.add(t, values):
            self._send(batch)

    def close(self) -> None:
        """Publish what is still batched."""
        for batch in self.batcher.flush():
            self._send(batch)

    def _send(self, batch: TelemetryBatch) -> None:
        self._publish(self._topic, batch.model_dump_json(exclude_none=True).encode())
        self.samples_sent += batch.n_samples
        self.batches_sent += 1
