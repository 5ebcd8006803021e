"""What core hands downstream: scored batches and detector events.

This module is the whole contract between ``core`` and ``rules`` (rules imports nothing else of
core). A :class:`ScoredBatch` is one telemetry batch of one device after the detectors ran: the
values and, for every sample and field, an anomaly score in [0, 1]. A :class:`DetectorEvent`
marks the onset of an anomaly on one field, with an explanation a person can read.

>>> import numpy as np
>>> batch = ScoredBatch(tenant="acme", device_id="hp-1", product="heat_pump",
...                     fields=("a", "b"), t=np.array([0.0, 60.0]),
...                     values=np.zeros((2, 2)), scores=np.array([[0.1, 0.2], [0.9, 0.3]]))
>>> batch.max_score_per_sample().tolist()
[0.2, 0.9]
>>> batch.n_samples
2
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "EVENT_THRESHOLD",
    "AgentEvent",
    "ConfigReported",
    "DetectorEvent",
    "DeviceStatus",
    "EventSink",
    "LifecycleEvent",
    "LifecycleSink",
    "ScoredBatch",
]

#: a field whose anomaly score reaches this emits a detector event (the default of
#: ``[core] event_threshold``; the console marks anomalies on charts from it too)
EVENT_THRESHOLD = 0.8


@dataclass(frozen=True, slots=True)
class DetectorEvent:
    """Onset of an anomaly on one series, explained."""

    tenant: str
    device_id: str
    product: str
    field: str
    detector: str
    ts: float
    score: float
    value: float
    explanation: str
    #: predicted seconds until the series crosses its limit, when a trend detector can tell
    time_to_limit_s: float | None = None


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """One device's batch after detection: values and scores, one row per sample."""

    tenant: str
    device_id: str
    product: str
    fields: tuple[str, ...]
    t: NDArray[np.float64]
    values: NDArray[np.float64]
    scores: NDArray[np.float64]
    events: tuple[DetectorEvent, ...] = field(default=())
    #: the firmware version the batch says the device runs (None: it did not say)
    firmware: str | None = None

    @property
    def n_samples(self) -> int:
        """Number of samples (rows)."""
        return int(self.t.shape[0])

    def max_score_per_sample(self) -> NDArray[np.float64]:
        """The highest field score of every sample (NaN scores count as 0)."""
        out: NDArray[np.float64] = np.nan_to_num(self.scores, nan=0.0).max(axis=1)
        return out


#: Where core sends each scored batch (the rules pipeline, in the application shell's wiring).
EventSink = Callable[[ScoredBatch], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's agent said it is online, or offline: on purpose (``reason="shutdown"``) or
    by its last will (``"connection_lost"``, published by the broker). ``ts`` is when the
    agent wrote it (the arrival time if it did not say)."""

    tenant: str
    device_id: str
    state: Literal["online", "offline"]
    ts: float
    reason: Literal["shutdown", "connection_lost"] | None = None
    boot_id: str = ""
    firmware: str | None = None
    queue_depth: int = 0
    dropped_samples: int = 0


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """An alarm or event the device's agent raised itself (its ``/event`` topic)."""

    tenant: str
    device_id: str
    kind: str
    severity: Literal["info", "warning", "alarm"]
    ts: float
    boot_id: str = ""
    seq: int = 0
    detail: tuple[tuple[str, str | float | int | bool], ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigReported:
    """What a device did with its desired config (its retained ``config/reported``)."""

    tenant: str
    device_id: str
    status: Literal["applied", "rejected"]
    revision: int | None
    applied: tuple[tuple[str, float | int | None], ...]
    reason: str | None = None
    ts: float = 0.0


#: one message of a device's lifecycle, as core hands it downstream
LifecycleEvent = DeviceStatus | AgentEvent | ConfigReported
#: where core sends lifecycle messages (the rules' device book, in the shell's wiring)
LifecycleSink = Callable[[LifecycleEvent], Awaitable[None]]
