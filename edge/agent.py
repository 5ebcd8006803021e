"""The device agent: samples → batches → (disk queue →) MQTT, QoS 1.

Without a queue, each batch is handed to ``publish`` as it completes (the simple path the demo
uses):

>>> from edge.batcher import Batcher
>>> sent = []
>>> agent = EdgeAgent("acme", Batcher("hp-1", "b1", "heat_pump", ("a",), max_samples=2),
...                   lambda topic, payload: sent.append(topic))
>>> import numpy as np
>>> agent.add_samples(np.array([0.0, 1.0, 2.0]), np.ones((3, 1)))
>>> agent.close()
>>> sent, agent.samples_sent
(['forewarn/v1/acme/hp-1/telemetry', 'forewarn/v1/acme/hp-1/telemetry'], 3)

With a :class:`~edge.queue.DiskQueue`, every accepted sample is on disk when ``add_samples``
returns: journalled as staged rows first, then, once a batch is complete, as a queue record
(a restarted agent re-batches whatever was still staged). :class:`~edge.uplink.Uplink` sends
the records.

>>> import tempfile, pathlib
>>> from edge.queue import DiskQueue
>>> with tempfile.TemporaryDirectory() as tmp:
...     queue = DiskQueue(pathlib.Path(tmp) / "q.sqlite")
...     agent = EdgeAgent("acme", Batcher("hp-1", "b1", "heat_pump", ("a",), max_samples=2),
...                       queue=queue)
...     agent.add_samples(np.array([0.0, 1.0, 2.0]), np.ones((3, 1)))
...     queue.depth, len(queue.staged())
...     queue.close()
...     queue = DiskQueue(pathlib.Path(tmp) / "q.sqlite")       # killed and restarted
...     agent = EdgeAgent("acme", Batcher("hp-1", "b2", "heat_pump", ("a",), max_samples=2),
...                       queue=queue)
...     agent.close()
...     [r.n_samples for r in queue.peek(10)], queue.stats().accepted_samples
...     queue.close()
(1, 1)
([2, 1], 3)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from edge.batcher import Batcher
from edge.problems import problems
from edge.queue import DiskQueue, Priority
from edge.schema import (
    ConfigReport,
    DesiredConfig,
    EventMessage,
    StatusMessage,
    TelemetryBatch,
    encode_payload,
    event_topic,
    telemetry_topic,
)

__all__ = ["EdgeAgent", "PublishFn"]

#: sends one payload to one topic (QoS 1), e.g. a test collecting what the agent would send
PublishFn = Callable[[str, bytes], None]

_SEVERITY_PRIORITY = {"info": Priority.EVENT, "warning": Priority.EVENT, "alarm": Priority.ALARM}


class EdgeAgent:
    """Batches a device's samples and publishes or queues each batch as it completes.

    ``compress_above_bytes`` (queue path only; ``None`` never compresses) is the JSON size above
    which a payload is zlib-compressed, see :func:`edge.schema.encode_payload`.
    ``sample_period_s`` and ``status_interval_s`` are carried for whoever samples and reports
    (the run loop); remote config may change them.
    """

    def __init__(
        self,
        tenant: str,
        batcher: Batcher,
        publish: PublishFn | None = None,
        *,
        queue: DiskQueue | None = None,
        compress_above_bytes: int | None = 1024,
        sample_period_s: float | None = None,
        status_interval_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if publish is None and queue is None:
            raise ValueError("an EdgeAgent needs a publish function or a disk queue")
        self.tenant = tenant
        self.batcher = batcher
        self.queue = queue
        self._publish = publish
        self._clock = clock
        self._topic = telemetry_topic(tenant, batcher.device_id)
        self.compress_above_bytes = compress_above_bytes
        self.sample_period_s = sample_period_s
        self.status_interval_s = status_interval_s
        self.config_revision: int | None = None
        self.samples_sent = 0
        self.batches_sent = 0
        self.events_sent = 0
        if queue is not None:
            self._recover(queue)

    @property
    def device_id(self) -> str:
        """The device this agent speaks for."""
        return self.batcher.device_id

    def _recover(self, queue: DiskQueue) -> None:
        staged = queue.staged()
        if not staged:
            return
        t = np.array([ts for ts, _ in staged], dtype=np.float64)
        values = np.array([[np.nan if v is None else v for v in row] for _, row in staged],
                          dtype=np.float64)
        with queue.transaction():
            # journalled before the restart (so already accepted); now in this boot's batches
            for batch in self.batcher.add(t, values):
                self._send(batch)
            queue.restage(self.batcher.pending)

    def add_samples(self, t: NDArray[np.float64], values: NDArray[np.float64]) -> None:
        """Accept samples (rows of ``values`` at epoch seconds ``t``); send what they complete."""
        if self.queue is None:
            for batch in self.batcher.add(t, values):
                self._send(batch)
            return
        # on disk first: from here on a crash cannot lose them
        self.queue.stage([
            (ts, [v if math.isfinite(v) else None for v in row])
            for ts, row in zip(t.tolist(), values.tolist(), strict=True)
        ])
        batches = self.batcher.add(t, values)
        if batches:
            self._cut(batches)

    def poll(self) -> None:
        """Cut the open batch if it is due by the wall clock (``Batcher(age_clock="wall")``)."""
        self._cut(self.batcher.poll())

    def close(self) -> None:
        """Send (or queue) what is still batched."""
        self._cut(self.batcher.flush())

    def _cut(self, batches: list[TelemetryBatch]) -> None:
        if not batches:
            return
        if self.queue is None:
            for batch in batches:
                self._send(batch)
            return
        with self.queue.transaction():
            for batch in batches:
                self._send(batch)
            self.queue.restage(self.batcher.pending)

    def _send(self, batch: TelemetryBatch) -> None:
        body = batch.model_dump_json(exclude_none=True).encode()
        if self.queue is None:
            assert self._publish is not None
            self._publish(self._topic, body)
        else:
            payload, content_type = encode_payload(body, self.compress_above_bytes)
            self.queue.put(self._topic, payload, content_type=content_type,
                           n_samples=batch.n_samples)
        self.samples_sent += batch.n_samples
        self.batches_sent += 1

    def add_event(
        self,
        kind: str,
        severity: Literal["info", "warning", "alarm"] = "alarm",
        detail: dict[str, str | float | int | bool] | None = None,
        t: float | None = None,
    ) -> EventMessage:
        """Raise an alarm or event; it is queued ahead of telemetry and dropped last."""
        event = EventMessage(
            device_id=self.device_id, boot_id=self.batcher.boot_id, seq=self.events_sent,
            t=self._clock() if t is None else t, kind=kind, severity=severity,
            detail=detail or {},
        )
        body = event.model_dump_json().encode()
        topic = event_topic(self.tenant, self.device_id)
        if self.queue is None:
            assert self._publish is not None
            self._publish(topic, body)
        else:
            self.queue.put(topic, body, priority=_SEVERITY_PRIORITY[severity])
        self.events_sent += 1
        return event

    # --- remote config and status -----------------------------------------------------------

    @property
    def running_config(self) -> dict[str, float | int | None]:
        """The config in force, as reported on the ``config/reported`` topic."""
        return {
            "revision": self.config_revision,
            "batch_max_samples": self.batcher.max_samples,
            "batch_max_age_s": self.batcher.max_age_s,
            "sample_period_s": self.sample_period_s,
            "compress_above_bytes": self.compress_above_bytes,
            "status_interval_s": self.status_interval_s,
        }

    def apply_config(self, payload: bytes) -> ConfigReport:
        """Validate and apply a desired config; on any error keep the old one and say why.

        >>> from edge.batcher import Batcher
        >>> agent = EdgeAgent("acme", Batcher("hp-1", "b1", "heat_pump", ("a",)), print)
        >>> agent.apply_config(b'{"revision": 2, "batch_max_samples": 10}').status
        'applied'
        >>> report = agent.apply_config(b'{"revision": 3, "batch_max_samples": -1}')
        >>> report.status, report.reason, report.applied["batch_max_samples"]
        ('rejected', 'batch_max_samples: Input should be greater than or equal to 1', 10)
        """
        try:
            desired = DesiredConfig.model_validate_json(payload)
        except ValidationError as exc:
            reason = "; ".join(problems(exc, root="config"))
            return ConfigReport(device_id=self.device_id, status="rejected", reason=reason,
                                applied=self.running_config)
        if desired.batch_max_samples is not None:
            self.batcher.max_samples = desired.batch_max_samples
        if desired.batch_max_age_s is not None:
            self.batcher.max_age_s = desired.batch_max_age_s
        if desired.sample_period_s is not None:
            self.sample_period_s = desired.sample_period_s
        if desired.compress_above_bytes is not None:
            self.compress_above_bytes = desired.compress_above_bytes
        if desired.status_interval_s is not None:
            self.status_interval_s = desired.status_interval_s
        self.config_revision = desired.revision
        return ConfigReport(device_id=self.device_id, status="applied",
                            revision=desired.revision, applied=self.running_config)

    def status(self, state: Literal["online", "offline"],
               reason: Literal["shutdown", "connection_lost"] | None = None) -> StatusMessage:
        """The birth (``online``) or goodbye/last-will (``offline`` with its ``reason``)
        message, with the queue's figures."""
        stats = self.queue.stats() if self.queue is not None else None
        return StatusMessage(
            device_id=self.device_id, boot_id=self.batcher.boot_id, state=state,
            firmware=self.batcher.firmware,
            queue_depth=stats.depth if stats else 0,
            queue_bytes=stats.bytes if stats else 0,
            dropped=stats.dropped_records if stats else 0,
            dropped_samples=stats.dropped_samples if stats else 0,
            t=self._clock(),
            reason=reason if state == "offline" else None,
        )
