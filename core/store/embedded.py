"""The embedded time-series store: one local SQLite file, no server.

Good for the demo and small installs; the InfluxDB store serves fleets.

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
>>> store.close()
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from core.events import ScoredBatch
from core.store.base import SeriesFrame, StoreError

__all__ = ["EmbeddedStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    tenant TEXT NOT NULL,
    device_id TEXT NOT NULL,
    field TEXT NOT NULL,
    ts REAL NOT NULL,
    value REAL,
    score REAL,
    PRIMARY KEY (tenant, device_id, field, ts)
) WITHOUT ROWID;
"""


class EmbeddedStore:
    """Samples and scores in a SQLite file, one row per (device, field, timestamp)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open embedded store {path}: {exc}") from exc

    def write(self, batch: ScoredBatch) -> None:
        """Store values and scores; writing the same sample again replaces it."""
        n, k = batch.values.shape
        t = np.repeat(batch.t, k).tolist()
        fields = list(batch.fields) * n
        values = [None if v != v else v for v in batch.values.ravel().tolist()]
        scores = [None if s != s else s for s in batch.scores.ravel().tolist()]
        rows = zip([batch.tenant] * (n * k), [batch.device_id] * (n * k), fields, t, values,
                   scores, strict=True)
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?)", rows)
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store write failed: {exc}") from exc

    def read(
        self, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
    ) -> SeriesFrame:
        """History of one device in [start, stop); ``every_s`` > 0 averages into buckets."""
        bucket = "ts" if every_s <= 0 else f"(CAST(ts / {float(every_s)} AS INTEGER) * {float(every_s)})"
        rows = self._db.execute(
            f"SELECT {bucket} AS b, field, AVG(value), MAX(score) FROM samples "
            "WHERE tenant=? AND device_id=? AND ts>=? AND ts<? GROUP BY b, field ORDER BY b",
            (tenant, device_id, start, stop),
        ).fetchall()
        fields = tuple(sorted({r[1] for r in rows}))
        times = sorted({r[0] for r in rows})
        col = {f: i for i, f in enumerate(fields)}
        row_of = {ts: i for i, ts in enumerate(times)}
        values = np.full((len(times), len(fields)), np.nan)
        scores = np.full((len(times), len(fields)), np.nan)
        for ts, name, value, score in rows:
            i, j = row_of[ts], col[name]
            values[i, j] = np.nan if value is None else value
            scores[i, j] = np.nan if score is None else score
        return SeriesFrame(fields, np.array(times, dtype=np.float64), values, scores)

    def count_samples(self, tenant: str | None = None) -> int:
        """Distinct (device, timestamp) samples stored."""
        where, args = ("WHERE tenant=?", (tenant,)) if tenant is not None else ("", ())
        (count,) = self._db.execute(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT tenant, device_id, ts FROM samples {where})",
            args,
        ).fetchone()
        return int(count)

    def close(self) -> None:
        """Close the file."""
        self._db.close()
