"""The embedded time-series store: one local SQLite file, no server.

Good for the demo and small installs; the InfluxDB store serves fleets. It behaves like the
InfluxDB one (the contract suite checks both): timestamps are kept in milliseconds, writing a
sample again overwrites the fields it carries and keeps the others, downsampling averages values
and takes the maximum score over windows that start at multiples of ``every_s`` since the epoch.

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> store = EmbeddedStore(":memory:")
>>> store.write(ScoredBatch("acme", "hp-1", "heat_pump", ("a", "b"), np.array([0.0, 60.0]),
...                         np.array([[1.0, 2.0], [3.0, np.nan]]), np.zeros((2, 2))))
>>> store.count_samples()
2
>>> frame = store.read("acme", "hp-1", 0.0, 120.0)
>>> frame.fields, frame.values.tolist()
(('a', 'b'), [[1.0, 2.0], [3.0, nan]])
>>> store.read("acme", "hp-1", 0.0, 120.0, every_s=120.0).values.tolist()
[[2.0, 2.0]]
>>> store.close()
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from core.events import DetectorEvent, ScoredBatch
from core.store.base import SeriesFrame, StoreError
from edge.backoff import full_jitter

__all__ = ["EmbeddedStore"]

# Table names differ from the first layout ("samples"), which is left alone in old files.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    field TEXT NOT NULL,
    product TEXT NOT NULL,
    UNIQUE (tenant, device_id, field)
);
CREATE TABLE IF NOT EXISTS sample (
    series_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value REAL,
    score REAL,
    PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    product TEXT NOT NULL,
    field TEXT NOT NULL,
    detector TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    score REAL,
    value REAL,
    explanation TEXT NOT NULL,
    time_to_limit_s REAL,
    PRIMARY KEY (tenant, device_id, ts_ms, field, detector)
) WITHOUT ROWID;
"""

# NaN binds as NULL in SQLite, and NULL never overwrites what a sample already holds
_UPSERT = (
    "INSERT INTO sample (series_id, ts_ms, value, score) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (series_id, ts_ms) DO UPDATE SET "
    "value = coalesce(excluded.value, value), score = coalesce(excluded.score, score)"
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's "database is locked" / "busy": another connection holds the lock."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class EmbeddedStore:
    """Samples and scores in a SQLite file, one row per (series, millisecond)."""

    def __init__(self, path: Path | str, busy_timeout_s: float = 30.0,
                 open_deadline_s: float = 120.0, rng: random.Random | None = None) -> None:
        """Open (and make) the file; several processes may share it (a core's workers).

        Switching to WAL and making the tables need the file's write lock: a process that
        cannot get it within ``busy_timeout_s`` (another worker opening or writing at the same
        moment on a starved machine) tries again after a backoff until ``open_deadline_s``.
        """
        self.path = path
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        rng = rng or random.Random()
        deadline = time.monotonic() + open_deadline_s
        attempt = 0
        while True:
            try:
                self._db = self._open(str(path), busy_timeout_s)
                break
            except sqlite3.OperationalError as exc:
                delay = full_jitter(attempt, base_s=0.05, cap_s=2.0, rng=rng)
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise StoreError(f"cannot open embedded store {path}: {exc}") from exc
                attempt += 1
                time.sleep(delay)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open embedded store {path}: {exc}") from exc
        self._series: dict[tuple[str, str, str], int] = {}
        # the service may write from a worker thread while a reader asks for history
        self._lock = threading.Lock()

    @staticmethod
    def _open(path: str, busy_timeout_s: float) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, batch: ScoredBatch) -> None:
        """Store values, scores and detector onsets; a sample written again is overwritten."""
        self.write_many([batch])

    def write_many(self, batches: Sequence[ScoredBatch]) -> None:
        """Store several batches in one transaction."""
        try:
            with self._lock, self._db:
                for batch in batches:
                    self._insert(batch)
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store write failed: {exc}") from exc

    def _insert(self, batch: ScoredBatch) -> None:
        n, k = batch.values.shape
        if n and k:
            ids = np.array([self._series_id(batch, name) for name in batch.fields], dtype=np.int64)
            ts_ms = np.rint(batch.t * 1000.0).astype(np.int64)
            values = batch.values.ravel()
            scores = batch.scores.ravel()
            keep = np.isfinite(values) | np.isfinite(scores)
            rows = zip(
                np.tile(ids, n)[keep].tolist(),
                np.repeat(ts_ms, k)[keep].tolist(),
                np.where(np.isfinite(values), values, np.nan)[keep].tolist(),
                np.where(np.isfinite(scores), scores, np.nan)[keep].tolist(),
                strict=True,
            )
            self._db.executemany(_UPSERT, rows)
        if batch.events:
            self._db.executemany(
                "INSERT OR REPLACE INTO event VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (e.tenant, e.device_id, e.product, e.field, e.detector, round(e.ts * 1000),
                     e.score, e.value, e.explanation, e.time_to_limit_s)
                    for e in batch.events
                ],
            )

    def _series_id(self, batch: ScoredBatch, name: str) -> int:
        key = (batch.tenant, batch.device_id, name)
        series_id = self._series.get(key)
        if series_id is None:
            self._db.execute(
                "INSERT OR IGNORE INTO series (tenant, device_id, field, product) VALUES (?,?,?,?)",
                (*key, batch.product),
            )
            (series_id,) = self._db.execute(
                "SELECT id FROM series WHERE tenant=? AND device_id=? AND field=?", key
            ).fetchone()
            self._series[key] = int(series_id)
        return int(series_id)

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History of one device in [start, stop); ``every_s`` > 0 averages into windows."""
        every_ms = max(1, round(every_s * 1000)) if every_s > 0 else 1
        rows = self._fetch(
            "SELECT s.field, (x.ts_ms / ?) * ? AS window, AVG(x.value), MAX(x.score) "
            "FROM sample x JOIN series s ON s.id = x.series_id "
            "WHERE s.tenant = ? AND s.device_id = ? AND x.ts_ms >= ? AND x.ts_ms < ? "
            "GROUP BY s.field, window",
            (every_ms, every_ms, tenant, device_id, start * 1000.0, stop * 1000.0),
        )
        fields = tuple(sorted({row[0] for row in rows}))
        windows = sorted({row[1] for row in rows})
        col_of = {name: j for j, name in enumerate(fields)}
        row_of = {window: i for i, window in enumerate(windows)}
        values = np.full((len(windows), len(fields)), np.nan)
        scores = np.full((len(windows), len(fields)), np.nan)
        for name, window, value, score in rows:
            i, j = row_of[window], col_of[name]
            values[i, j] = math.nan if value is None else value
            scores[i, j] = math.nan if score is None else score
        t = np.array(windows, dtype=np.float64) / 1000.0
        return SeriesFrame(fields, t, values, scores)

    def read_events(
        self, tenant: str, device_id: str, start: float, stop: float
    ) -> tuple[DetectorEvent, ...]:
        """Detector onsets of one device in [start, stop), oldest first."""
        rows = self._fetch(
            "SELECT tenant, device_id, product, field, detector, ts_ms, score, value, explanation,"
            " time_to_limit_s FROM event WHERE tenant = ? AND device_id = ? AND ts_ms >= ?"
            " AND ts_ms < ? ORDER BY ts_ms, field, detector",
            (tenant, device_id, start * 1000.0, stop * 1000.0),
        )
        return tuple(
            DetectorEvent(
                tenant=row[0], device_id=row[1], product=row[2], field=row[3], detector=row[4],
                ts=row[5] / 1000.0,
                score=math.nan if row[6] is None else row[6],
                value=math.nan if row[7] is None else row[7],
                explanation=row[8], time_to_limit_s=row[9],
            )
            for row in rows
        )

    def product_of(self, tenant: str, device_id: str) -> str | None:
        """The product the device's series were first stored under."""
        rows = self._fetch(
            "SELECT product FROM series WHERE tenant = ? AND device_id = ? ORDER BY id LIMIT 1",
            (tenant, device_id),
        )
        return str(rows[0][0]) if rows else None

    def count_samples(self, tenant: str | None = None) -> int:
        """Distinct (device, timestamp) samples that hold at least one value."""
        where, args = ("AND s.tenant = ?", (tenant,)) if tenant is not None else ("", ())
        ((count,),) = self._fetch(
            "SELECT COUNT(*) FROM (SELECT DISTINCT s.tenant, s.device_id, x.ts_ms "
            f"FROM sample x JOIN series s ON s.id = x.series_id WHERE x.value IS NOT NULL {where})",
            args,
        )
        return int(count)

    def _fetch(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store query failed: {exc}") from exc

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
