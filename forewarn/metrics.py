"""forewarn's Prometheus metrics: one registry, read at scrape time from what already counts.

Core keeps its own counters (``CorePipeline.stats``, ``dead_letters``) and the case database
knows the cases and the outbox, so nothing here double-counts: a collector reads them when
Prometheus scrapes. The one thing nobody measured, detector time per batch, comes from
:class:`TimedDetector`, a wrapper the wiring place puts around the detector (core is untouched).

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> metrics = ForewarnMetrics(engine)
>>> text = metrics.exposition().decode()
>>> "forewarn_outbox_backlog 0.0" in text
True
>>> engine.dispose()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.pipeline import BatchDetector, CorePipeline
from forewarn.report.metrics import customer_metrics
from rules.db import CaseRow, NoticeRow

__all__ = ["NOTICE_LATENCY_BUCKETS", "ForewarnMetrics", "TimedDetector"]

#: seconds from a notice entering the outbox to its channel taking it
NOTICE_LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400)
_SEVERITIES = ("info", "warning", "critical")


class _Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class TimedDetector:
    """A detector that reports how long each batch took to a histogram.

    >>> import numpy as np
    >>> class Zero:
    ...     name = "zero"
    ...     def update(self, slots, x, t=None): return np.zeros_like(x)
    >>> seen = []
    >>> class Seen:
    ...     def observe(self, amount): seen.append(amount)
    >>> TimedDetector(Zero(), Seen()).update(np.array([0]), np.ones((3, 1))).shape, len(seen)
    ((3, 1), 1)
    """

    def __init__(self, inner: BatchDetector, histogram: _Observer,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.histogram = histogram
        self.clock = clock

    @property
    def name(self) -> str:
        """The wrapped detector's name."""
        return self.inner.name

    def update(self, slots: NDArray[np.int64], x: NDArray[np.float64],
               t: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """Score ``x`` with the wrapped detector and time it."""
        started = self.clock()
        try:
            return self.inner.update(slots, x, t)
        finally:
            self.histogram.observe(self.clock() - started)

    def __getattr__(self, name: str) -> Any:
        # everything else is the wrapped detector's (levels, findings, state): the pipeline's
        # isinstance checks against its protocols see exactly what the detector has
        return getattr(self.inner, name)


class _Collector(Collector):
    def __init__(self, owner: ForewarnMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        yield from self.owner.pipeline_metrics()
        yield from self.owner.case_metrics()
        if self.owner.engine is not None:  # helpdesk tickets and customer answers (issue 19)
            yield from customer_metrics(self.owner.engine)


class ForewarnMetrics:
    """The registry ``/metrics`` serves; attach a pipeline when core runs in this process."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self.pipelines: list[CorePipeline] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.detector_seconds = Histogram(
            "forewarn_detector_batch_seconds", "Detector time per telemetry batch",
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def attach_pipeline(self, pipeline: CorePipeline) -> None:
        """Report this pipeline's counters (and time its detector from now on)."""
        if not isinstance(pipeline.detector, TimedDetector):
            pipeline.detector = TimedDetector(pipeline.detector, self.detector_seconds)
        self.pipelines.append(pipeline)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything."""
        return generate_latest(self.registry)

    def pipeline_metrics(self) -> Iterator[Metric]:
        """Samples, batches, events and dead letters of the attached pipelines."""
        ingested = CounterMetricFamily("forewarn_samples_ingested",
                                       "Samples decoded, scored and stored")
        dropped = CounterMetricFamily("forewarn_batches_dropped",
                                      "Telemetry batches dropped", labels=["reason"])
        dead = CounterMetricFamily("forewarn_messages_dead_lettered",
                                   "Messages that could not be decoded", labels=["reason"])
        events = CounterMetricFamily("forewarn_detector_events", "Anomaly onsets detected")
        peer = CounterMetricFamily("forewarn_peer_events", "Onsets of the peer detector (a "
                                   "device unlike its peers, a cohort moved), among the events")
        messages = CounterMetricFamily("forewarn_messages", "Telemetry messages received")
        evicted = CounterMetricFamily(
            "forewarn_state_evicted", "Per-device state forgotten to stay within its cap "
            "(series: [core] max_series_per_device, boot: max_boots_per_device)",
            labels=["kind"])
        stats = [p.stats for p in self.pipelines]
        evicted.add_metric(["series"], sum(s.evicted_series for s in stats))
        evicted.add_metric(["boot"], sum(s.evicted_boots for s in stats))
        ingested.add_metric([], sum(s.samples_ingested for s in stats))
        messages.add_metric([], sum(s.messages for s in stats))
        events.add_metric([], sum(s.events for s in stats))
        peer.add_metric([], sum(s.peer_events for s in stats))
        dropped.add_metric(["duplicate"], sum(s.duplicate_batches for s in stats))
        reasons: dict[str, int] = {}
        for pipeline in self.pipelines:
            for reason, n in pipeline.dead_letters.counts.items():
                reasons[reason] = reasons.get(reason, 0) + n
        for reason, n in sorted(reasons.items()):
            dead.add_metric([reason], n)
        yield from (messages, ingested, dropped, dead, events, peer, evicted)

    def case_metrics(self) -> Iterator[Metric]:
        """Open cases by severity, outbox backlog and failures, notice latency."""
        if self.engine is None:
            return
        with Session(self.engine) as session:
            open_rows = session.execute(
                select(CaseRow.tenant, CaseRow.severity, func.count())
                .where(CaseRow.status != "resolved")
                .group_by(CaseRow.tenant, CaseRow.severity)).all()
            notice_rows = session.execute(
                select(NoticeRow.status, func.count()).group_by(NoticeRow.status)).all()
            latencies = [float(x or 0.0) for x in session.scalars(
                select(NoticeRow.sent_at - NoticeRow.created_at)
                .where(NoticeRow.sent_at.is_not(None)))]
        cases = GaugeMetricFamily("forewarn_open_cases", "Cases open or acknowledged",
                                  labels=["tenant", "severity"])
        for tenant, severity, n in open_rows:
            cases.add_metric([tenant, severity], int(n))
        counts = {str(status): int(n) for status, n in notice_rows}
        backlog = GaugeMetricFamily("forewarn_outbox_backlog", "Notices waiting for delivery")
        backlog.add_metric([], counts.get("pending", 0))
        failed = GaugeMetricFamily("forewarn_outbox_failed",
                                   "Notices the outbox gave up on (dead)")
        failed.add_metric([], counts.get("dead", 0))
        notices = GaugeMetricFamily("forewarn_notices", "Notices by status", labels=["status"])
        for status, n in sorted(counts.items()):
            notices.add_metric([status], n)
        latency = HistogramMetricFamily(
            "forewarn_notice_latency_seconds",
            "Seconds from a notice entering the outbox to its channel taking it")
        values = np.sort(np.asarray(latencies, dtype=np.float64))
        buckets = [(str(float(b)), float(np.searchsorted(values, b, side="right")))
                   for b in NOTICE_LATENCY_BUCKETS]
        buckets.append(("+Inf", float(values.shape[0])))
        latency.add_metric([], buckets, float(values.sum()))
        yield from (cases, backlog, failed, notices, latency)
