"""``forewarn core``'s ``/metrics``: ingest, detection, store, partitions and outbox figures.

Served on core's own port (``[core] metrics_port``; 0: off) by a small HTTP endpoint in the
event loop, so a scrape reads the counters between two messages, never while they change.
It reuses the console's registry (:class:`forewarn.metrics.ForewarnMetrics`: messages and
samples in, dead letters by reason, detector time per batch, open cases, outbox backlog) and
adds what only a running core knows:

- ``forewarn_store_write_seconds``: store write latency (a histogram per write call);
- ``forewarn_spool_pending_batches`` / ``_bytes``, ``forewarn_store_up``: the outage spool
  (``[store.buffer]``) of the direct engine;
- ``forewarn_outbox_oldest_pending_age_seconds``: how long the oldest undelivered notice waits;
- NATS workers: ``forewarn_partition_lag{partition}`` (messages stored but not yet
  acknowledged, from JetStream), ``forewarn_partition_messages``, ``_snapshots``,
  ``_store_retries``.

With the NATS engine every process serves its own figures: the supervisor (outbox, cases) on
``metrics_port`` and worker *i* on ``metrics_port + 1 + i`` (:func:`worker_metrics_port`);
point Prometheus at all of them.

>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> text = CoreMetrics(engine).exposition().decode()
>>> "forewarn_outbox_oldest_pending_age_seconds 0.0" in text, "forewarn_messages_total" in text
(True, True)
>>> engine.dispose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CONTENT_TYPE_LATEST, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.detect.peer_share import PeerBoardStats
from core.events import ScoredBatch
from core.nats import NatsConfig, PartitionStats, StreamMonitor
from core.nats.bridge import IngestBridge
from core.pipeline import CorePipeline
from core.store.base import HistoryStore
from forewarn.metrics import ForewarnMetrics
from forewarn.ports import listening_socket
from forewarn.workers import split_partitions
from rules.db import NoticeRow

__all__ = ["CoreMetrics", "TimedStore", "worker_metrics_port"]

_log = logging.getLogger(__name__)

STORE_WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                       2.5, 5.0, 10.0)


def worker_metrics_port(metrics_port: int, owned: Sequence[int], workers: int,
                        partitions: Sequence[int]) -> int:
    """The port of the worker owning ``partitions`` (0: metrics off).

    The supervisor splits ``owned`` into ``workers`` slices (:func:`split_partitions`); the
    worker with slice *i* serves on ``metrics_port + 1 + i``.

    >>> worker_metrics_port(9300, range(32), 3, range(11, 21))
    9302
    """
    if metrics_port == 0:
        return 0
    slices = [list(s) for s in split_partitions(list(owned), workers)]
    mine = list(partitions)
    return metrics_port + 1 + (slices.index(mine) if mine in slices else 0)


class TimedStore:
    """A store whose writes report their duration to a histogram; everything else passes."""

    def __init__(self, inner: HistoryStore, histogram: Histogram,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.histogram = histogram
        self.clock = clock

    def write(self, batch: ScoredBatch) -> None:
        """Write one batch to the wrapped store, timed."""
        started = self.clock()
        try:
            self.inner.write(batch)
        finally:
            self.histogram.observe(self.clock() - started)

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Write several batches to the wrapped store, timed as one write."""
        started = self.clock()
        try:
            self.inner.write_many(batches)
        finally:
            self.histogram.observe(self.clock() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _CoreCollector(Collector):
    def __init__(self, owner: CoreMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        yield from self.owner.spool_metrics()
        yield from self.owner.outbox_metrics()
        yield from self.owner.partition_metrics()
        yield from self.owner.bridge_metrics()


class CoreMetrics:
    """The registry a core process serves; attach its pipelines, store and partitions."""

    def __init__(self, engine: Engine | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.base = ForewarnMetrics(engine)
        self.engine = engine
        self.clock = clock
        self.registry = self.base.registry
        self.store_seconds = Histogram(
            "forewarn_store_write_seconds", "Time-series store write latency (per write call)",
            buckets=STORE_WRITE_BUCKETS, registry=self.registry)
        self.stores: list[Any] = []
        #: NATS workers: per-partition counters, and the lag :meth:`watch_partitions` keeps
        self.partition_stats: Callable[[], Sequence[PartitionStats]] | None = None
        #: the NATS stream's fill monitor (workers): its alert shows in /metrics
        self.stream_monitor: StreamMonitor | None = None
        self.partition_lag: dict[int, int] = {}
        #: NATS workers: (tenant, device) → batches missing from its sequence when read
        self.partition_missing: dict[tuple[str, str], int] | None = None
        #: NATS workers: what the peer summaries of every partition did (``[nats] peer_share``)
        self.peer_board: PeerBoardStats | None = None
        #: the supervisor's ingest bridge (``[nats] bridge``): back-pressure and per-device loss
        self.bridge: IngestBridge | None = None
        self.registry.register(_CoreCollector(self))

    def attach_pipeline(self, pipeline: CorePipeline) -> CorePipeline:
        """Report the pipeline's counters and time its detector; returns it."""
        self.base.attach_pipeline(pipeline)
        return pipeline

    def timed_store(self, store: HistoryStore) -> HistoryStore:
        """``store`` with its writes timed (and its spool reported, when it has one)."""
        if callable(getattr(store, "stats", None)):
            self.stores.append(store)
        timed: Any = TimedStore(store, self.store_seconds)
        return timed  # type: ignore[no-any-return]

    def exposition(self) -> bytes:
        """The Prometheus text format of everything."""
        return self.base.exposition()

    def spool_metrics(self) -> Iterator[Metric]:
        """The outage spool: what waits for the store, and whether the store is up."""
        if not self.stores:
            return
        batches = GaugeMetricFamily("forewarn_spool_pending_batches",
                                    "Batches spooled to disk while the store is down")
        nbytes = GaugeMetricFamily("forewarn_spool_pending_bytes", "Bytes in the outage spool")
        dropped = CounterMetricFamily("forewarn_spool_dropped_batches",
                                      "Batches the full spool could not take")
        up = GaugeMetricFamily("forewarn_store_up", "1 while the store takes writes")
        stats = [store.stats() for store in self.stores]
        batches.add_metric([], sum(s.get("pending_batches", 0) for s in stats))
        nbytes.add_metric([], sum(s.get("pending_bytes", 0) for s in stats))
        dropped.add_metric([], sum(v for s in stats for k, v in s.items()
                                   if k.startswith("dropped")))
        up.add_metric([], min(s.get("store_up", 1) for s in stats))
        yield from (batches, nbytes, dropped, up)

    def outbox_metrics(self) -> Iterator[Metric]:
        """How long the oldest pending notice has waited (0 when none waits)."""
        if self.engine is None:
            return
        with Session(self.engine) as session:
            oldest = session.scalar(select(func.min(NoticeRow.created_at))
                                    .where(NoticeRow.status == "pending"))
        age = GaugeMetricFamily("forewarn_outbox_oldest_pending_age_seconds",
                                "Seconds the oldest notice not yet delivered has waited")
        age.add_metric([], 0.0 if oldest is None else max(0.0, self.clock() - float(oldest)))
        yield age

    def partition_metrics(self) -> Iterator[Metric]:
        """NATS partitions: lag, messages, snapshots and store retries."""
        if self.partition_stats is None:
            return
        lag = GaugeMetricFamily("forewarn_partition_lag",
                                "Messages of the partition stored but not yet acknowledged",
                                labels=["partition"])
        messages = CounterMetricFamily("forewarn_partition_messages",
                                       "Messages the partition's worker processed",
                                       labels=["partition"])
        snapshots = CounterMetricFamily("forewarn_partition_snapshots",
                                        "Snapshots saved", labels=["partition"])
        retries = CounterMetricFamily("forewarn_partition_store_retries",
                                      "Store writes retried", labels=["partition"])
        for stats in self.partition_stats():
            label = [str(stats.partition)]
            if stats.partition in self.partition_lag:
                lag.add_metric(label, self.partition_lag[stats.partition])
            messages.add_metric(label, stats.messages)
            snapshots.add_metric(label, stats.snapshots)
            retries.add_metric(label, stats.store_retries)
        yield from (lag, messages, snapshots, retries)
        if self.partition_missing is not None:
            missing = CounterMetricFamily(
                "forewarn_partition_gap_batches",
                "Batches missing from a device's sequence when its partition was read "
                "(discarded unread by a full stream, or lost before it)",
                labels=["tenant", "device"])
            for (tenant, device), count in list(self.partition_missing.items()):
                missing.add_metric([tenant, device], count)
            yield missing
        if self.peer_board is not None:
            yield from _peer_board_metrics(self.peer_board)
        if self.stream_monitor is not None:
            monitor = self.stream_monitor
            fill = GaugeMetricFamily("forewarn_stream_fill_ratio",
                                     "Share of [nats] max_bytes the stream uses")
            fill.add_metric([], monitor.fill)
            unread = GaugeMetricFamily(
                "forewarn_stream_discarded_unread",
                "Messages the full stream discarded before they were read (upper bound)")
            unread.add_metric([], monitor.lost_unread)
            alert = GaugeMetricFamily("forewarn_stream_alert",
                                      "1 while the stream is past [nats] alert_fill or has "
                                      "discarded unread telemetry")
            alert.add_metric([], float(monitor.fill >= monitor.cfg.alert_fill
                                       or monitor.lost_unread > 0))
            yield from (fill, unread, alert)

    def bridge_metrics(self) -> Iterator[Metric]:
        """The ingest bridge: forwarded, back-pressure, and what each device lost before it."""
        if self.bridge is None:
            return
        bridge = self.bridge
        gauge = GaugeMetricFamily(
            "forewarn_ingest_backpressure",
            "1 while the ingest bridge holds telemetry at the broker (stream past high_water)")
        gauge.add_metric([], float(bridge.paused))
        fill = GaugeMetricFamily("forewarn_ingest_unread_fill_ratio",
                                 "Share of [nats] max_bytes the stream's unread span takes")
        fill.add_metric([], bridge.gate.fill)
        episodes = CounterMetricFamily("forewarn_ingest_backpressure_episodes",
                                       "Back-pressure episodes (each one alert and one notice)")
        episodes.add_metric([], bridge.gate.episodes)
        paused = CounterMetricFamily("forewarn_ingest_backpressure_seconds",
                                     "Seconds the bridge held telemetry back")
        paused.add_metric([], bridge.gate.paused_s())
        forwarded = CounterMetricFamily("forewarn_ingest_forwarded",
                                        "Messages the bridge stored in the stream")
        forwarded.add_metric([], bridge.ledger.totals().forwarded)
        lifecycle = CounterMetricFamily(
            "forewarn_ingest_lifecycle_forwarded",
            "Device lifecycle messages (status, events, reported configs) the bridge stored")
        lifecycle.add_metric([], bridge.lifecycle_forwarded)
        told = CounterMetricFamily("forewarn_ingest_device_flow_messages",
                                   "Hold/release messages published to the edge agents")
        told.add_metric([], bridge.device_announcements)
        gaps = CounterMetricFamily(
            "forewarn_ingest_gap_batches",
            "Batches missing from a device's sequence at the bridge (lost before it)",
            labels=["tenant", "device"])
        for (tenant, device), counts in bridge.ledger.devices.items():
            if counts.gaps:
                gaps.add_metric([tenant, device], counts.gaps)
        unroutable = CounterMetricFamily(
            "forewarn_ingest_unroutable",
            "Messages dropped because their topic is no NATS subject, by device",
            labels=["tenant", "device"])
        for (tenant, device), count in bridge.unroutable.items():
            unroutable.add_metric([tenant, device], count)
        yield from (gauge, fill, episodes, paused, forwarded, lifecycle, told, gaps, unroutable)

    async def watch_partitions(self, js: JetStreamContext, cfg: NatsConfig,
                               partitions: Sequence[int], every_s: float = 10.0) -> None:
        """Keep :attr:`partition_lag` current from JetStream's consumer info (until cancelled)."""
        while True:
            for partition in partitions:
                try:
                    info = await js.consumer_info(cfg.stream, cfg.consumer_name(partition))
                except NotFoundError:
                    continue
                except Exception as exc:  # a figure, not worth a worker: try again later
                    _log.debug("partition %d lag unknown: %s", partition, exc)
                    continue
                self.partition_lag[partition] = int(info.num_pending or 0) + int(
                    info.num_ack_pending or 0)
            await asyncio.sleep(every_s)

    @contextlib.asynccontextmanager
    async def serving(self, host: str, port: int) -> AsyncIterator[CoreMetrics]:
        """Serve ``/metrics`` for the life of the context."""
        server = await self.serve(host, port)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()

    async def serve(self, host: str, port: int) -> asyncio.Server:
        """Serve ``GET /metrics`` on ``host:port`` (close the returned server to stop)."""
        sock = listening_socket("core's /metrics ([core] metrics_port)", host, port)
        server = await asyncio.start_server(self._answer, sock=sock)
        _log.info("metrics on http://%s:%d/metrics", host, port)
        return server

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10.0):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them changes the answer
            parts = request.split()
            if len(parts) >= 2 and parts[0] in (b"GET", b"HEAD") and \
                    parts[1].split(b"?")[0] == b"/metrics":
                body = self.exposition()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
            else:
                body = b"not found: GET /metrics\n"
                head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + (body if parts[:1] != [b"HEAD"] else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            _log.debug("metrics request dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _peer_board_metrics(stats: PeerBoardStats) -> Iterator[Metric]:
    """Peer buckets judged over every partition, and those judged without some."""
    for name, value, what in (
            ("forewarn_peer_buckets_gathered", stats.buckets_gathered,
             "Peer buckets a partition judged over the partitions' summaries"),
            ("forewarn_peer_buckets_partial", stats.buckets_partial,
             "Of those, judged without an expected partition's summary ([nats] peer_wait_s "
             "passed: its worker dead or behind)"),
            ("forewarn_peer_partitions_missing", stats.partitions_missing,
             "Expected partitions missing from those buckets, summed"),
            ("forewarn_peer_summaries_late", stats.summaries_late,
             "Summaries that arrived after their bucket was judged without them"),
            ("forewarn_peer_publish_failures", stats.publish_failures,
             "Summaries not published after retries"),
            ("forewarn_peer_buckets_fetched", stats.buckets_fetched,
             "Peer buckets read again from the key-value bucket for a partition judging one "
             "its process had let go (taken over, or behind)")):
        family = CounterMetricFamily(name, what)
        family.add_metric([], value)
        yield family
    held = GaugeMetricFamily("forewarn_peer_board_bytes",
                             "Bytes of the partitions' peer summaries this process holds")
    held.add_metric([], stats.held_bytes)
    yield held
