"""InfluxDB (2.x, and 3.x through its v2 API) as the time-series store, via influxdb-client.

Writes are line protocol built from the batch arrays (:mod:`core.store.lineproto`), posted
synchronously in requests of at most ``max_lines_per_request`` lines, each retried a few times
at once by urllib3 (connection errors, 429, 5xx). Reads are Flux (:mod:`core.store.flux`). A
refusal that retrying cannot fix (4xx) raises :class:`~core.store.base.StoreRejectedError`,
anything else :class:`~core.store.base.StoreError`; a long outage is the business of
:class:`~core.store.buffered.BufferedStore` in front of this store.

>>> from core.store.config import InfluxConfig
>>> store = InfluxStore(InfluxConfig(url="http://127.0.0.1:9", retries=0, timeout_s=1.0))
>>> store.count_samples()
Traceback (most recent call last):
...
core.errors.StoreError: InfluxDB at http://127.0.0.1:9 unreachable: ...
>>> store.close()
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from core.events import DetectorEvent, ScoredBatch
from core.store.base import SeriesFrame, StoreError, StoreRejectedError
from core.store.config import InfluxConfig
from core.store.flux import count_query, events_query, product_query, read_query
from core.store.lineproto import ANOMALY, TELEMETRY, encode_batch

__all__ = ["InfluxStore"]

# 408 and 429 are "later", every other 4xx is "never"
_RETRYABLE_4XX = frozenset({408, 429})


class InfluxStore:
    """Writes scored batches to an InfluxDB bucket and reads device history back with Flux.

    Tags: ``tenant``, ``device``, ``product``; measurement ``telemetry`` holds one field per
    sensor, ``anomaly`` one score per sensor plus the detector onsets (tagged ``detector`` and
    ``field``), so scores plot beside the data in InfluxDB's UI or Grafana.
    """

    def __init__(self, config: InfluxConfig, *, client: InfluxDBClient | None = None) -> None:
        self.config = config
        retries = urllib3.Retry(
            total=config.retries,
            allowed_methods=None,  # writes are POSTs, and idempotent here
            status_forcelist=(429, 500, 502, 503, 504),
            backoff_factor=0.1,
            backoff_jitter=0.1,
            backoff_max=2.0,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        options: dict[str, Any] = {"retries": retries}
        if config.token.get_secret_value():  # no Authorization header at all without a token
            options["token"] = config.token.get_secret_value()
        self._client = client or InfluxDBClient(
            url=config.url,
            org=config.org,
            timeout=round(config.timeout_s * 1000),
            enable_gzip=config.gzip,
            **options,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._query_api = self._client.query_api()

    def __enter__(self) -> InfluxStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def write(self, batch: ScoredBatch) -> None:
        """Store values, scores and detector onsets of one batch (same samples overwrite)."""
        self.write_many([batch])

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Store several batches in as few requests as ``max_lines_per_request`` allows."""
        try:
            bodies = list(self._bodies(batches))
        except ValueError as exc:  # a name line protocol cannot carry
            raise StoreRejectedError(f"cannot write to InfluxDB: {exc}") from exc
        for body in bodies:
            self.write_lines(body)

    def write_lines(self, body: bytes) -> None:
        """Post a line-protocol body (millisecond timestamps) as it is."""
        if not body:
            return
        self._call(
            self._write_api.write,
            bucket=self.config.bucket,
            org=self.config.org,
            record=body,
            write_precision=WritePrecision.MS,
        )

    def _bodies(self, batches: Sequence[ScoredBatch]) -> Iterator[bytes]:
        limit = self.config.max_lines_per_request
        explanations = self.config.write_explanations
        pending: list[bytes] = []
        n_pending = 0
        for batch in batches:
            body = encode_batch(batch, explanations=explanations)
            if not body:
                continue
            n_lines = body.count(b"\n") + 1
            if n_pending and n_pending + n_lines > limit:
                yield b"\n".join(pending)
                pending, n_pending = [], 0
            if n_lines > limit:
                lines = body.split(b"\n")
                for i in range(0, n_lines, limit):
                    yield b"\n".join(lines[i : i + limit])
                continue
            pending.append(body)
            n_pending += n_lines
        if pending:
            yield b"\n".join(pending)

    # -- reading -------------------------------------------------------------------------------

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History of one device in [start, stop); ``every_s`` > 0 averages into windows."""
        query = read_query(self.config.bucket, tenant, device_id, start, stop, every_s)
        cells: dict[tuple[str, str, float], float] = {}
        for record in self._records(query):
            ts = round(record["_time"].timestamp(), 6)
            cells[(record["_measurement"], record["_field"], ts)] = float(record["_value"])
        return _frame(cells)

    def read_events(
        self, tenant: str, device_id: str, start: float, stop: float
    ) -> tuple[DetectorEvent, ...]:
        """Detector onsets of one device in [start, stop), oldest first."""
        query = events_query(self.config.bucket, tenant, device_id, start, stop)
        events = []
        for record in self._records(query):
            ttl = record.get("time_to_limit_s")
            events.append(
                DetectorEvent(
                    tenant=str(record["tenant"]),
                    device_id=str(record["device"]),
                    product=str(record.get("product") or ""),
                    field=str(record["field"]),
                    detector=str(record["detector"]),
                    ts=round(record["_time"].timestamp(), 6),
                    score=_number(record.get("score")),
                    value=_number(record.get("value")),
                    explanation=str(record.get("explanation") or ""),
                    time_to_limit_s=None if ttl is None else float(ttl),
                )
            )
        events.sort(key=lambda event: (event.ts, event.field, event.detector))
        return tuple(events)

    def product_of(self, tenant: str, device_id: str) -> str | None:
        """The ``product`` tag of the device's telemetry (the last, if it ever changed)."""
        query = product_query(self.config.bucket, tenant, device_id)
        products = [str(record["_value"]) for record in self._records(query)]
        return products[-1] if products else None

    def count_samples(self, tenant: str | None = None) -> int:
        """Number of distinct (device, timestamp) samples in ``telemetry``."""
        query = count_query(self.config.bucket, tenant)
        return sum(int(record["samples"]) for record in self._records(query))

    def _records(self, query: str) -> Iterator[dict[str, Any]]:
        tables = self._call(self._query_api.query, query, org=self.config.org)
        for table in tables:
            for record in table.records:
                yield record.values

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            status = int(exc.status or 0)
            reason = f"InfluxDB at {self.config.url} answered {status}: {exc.message or exc.reason}"
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise StoreRejectedError(reason) from exc
            raise StoreError(reason) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreError(f"InfluxDB at {self.config.url} unreachable: {exc}") from exc

    def close(self) -> None:
        """Release the HTTP connections (writes are synchronous, nothing is pending)."""
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _frame(cells: dict[tuple[str, str, float], float]) -> SeriesFrame:
    """Pivot (measurement, field, time) → value cells into a frame with sorted fields and times."""
    fields = tuple(sorted({field for _, field, _ in cells}))
    times = np.array(sorted({ts for _, _, ts in cells}), dtype=np.float64)
    values = np.full((times.size, len(fields)), np.nan)
    scores = np.full((times.size, len(fields)), np.nan)
    row_of = {ts: i for i, ts in enumerate(times.tolist())}
    col_of = {field: j for j, field in enumerate(fields)}
    for (measurement, field, ts), number in cells.items():
        target = values if measurement == TELEMETRY else scores if measurement == ANOMALY else None
        if target is not None:
            target[row_of[ts], col_of[field]] = number
    return SeriesFrame(fields=fields, t=times, values=values, scores=scores)
