"""Bounded store-and-forward queue on disk: a record leaves it only when the broker acknowledged it.

One SQLite file in WAL mode per device. A record (an encoded batch or event, with its topic) is
committed before anyone may send it, and deleted by :meth:`DiskQueue.ack` after the PUBACK, so a
crash (``kill -9``) at any point loses nothing that :meth:`DiskQueue.put` accepted: after a restart
the records are still there and are sent again (the receiver drops the duplicates by
``(device_id, boot_id, seq)``).

Caps, so the queue never fills a small flash disk:

* ``max_bytes``: payload + topic bytes held. A record that does not fit evicts the oldest records
  of the *lowest* priority first, never a record of higher priority than itself; if even that
  cannot make room, the new record itself is refused.
* ``max_age_s``: older records are dropped (stale data helps nobody and keeps the queue small).

Samples that wait in the batcher for their batch to fill are *staged*: appended, one JSON line
each, to a small journal file next to the database (``<file>.staged-<generation>``). An append is
one ``write`` of ~80 bytes, where a SQLite commit per sample would append several 4 KiB pages to
the WAL: on a flash disk that is the difference between kilobytes and megabytes written per
minute. When a batch is cut, its record is committed together with a new journal generation that
holds only the samples still waiting, so a crash at any point leaves exactly one valid journal.

Every drop is counted (records and the samples in them) and kept across restarts, so the status
message can report it. SQLite's ``synchronous=NORMAL`` in WAL mode survives a process crash; pass
``synchronous="FULL"`` to survive a power cut too, at the price of an fsync per commit.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     queue = DiskQueue(pathlib.Path(tmp) / "q.sqlite", max_bytes=10_000)
...     first = queue.put("t/telemetry", b"{}", n_samples=5)
...     alarm = queue.put("t/event", b"{}", priority=Priority.ALARM)
...     [r.topic for r in queue.peek(10)]          # alarms go first
...     queue.ack(alarm)
...     queue.close()
...     queue = DiskQueue(pathlib.Path(tmp) / "q.sqlite")   # as after a restart
...     [(r.id, r.n_samples) for r in queue.peek(10)]
...     queue.close()
['t/event', 't/telemetry']
True
[(1, 5)]
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

from edge.schema import CONTENT_TYPE_JSON

__all__ = ["RECORD_OVERHEAD_BYTES", "DiskQueue", "Priority", "QueueStats", "QueuedRecord"]

#: bytes charged per record on top of payload and topic (row header, index entries)
RECORD_OVERHEAD_BYTES = 48

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    topic TEXT NOT NULL,
    content_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    n_samples INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_priority ON records (priority, id);
CREATE INDEX IF NOT EXISTS records_by_age ON records (created);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COUNTERS = (
    "accepted_records", "accepted_samples", "acked_records", "acked_samples",
    "dropped_records", "dropped_samples",
)
#: bookkeeping of the staging journal, in the counters table but not part of QueueStats
_JOURNAL = ("staged_generation", "staged_carried")

#: one staged sample: epoch seconds and one value per field (None: missing)
StagedRow = tuple[float, list[float | None]]


class Priority(IntEnum):
    """Who is sent first and dropped last."""

    TELEMETRY = 0
    EVENT = 1
    ALARM = 2


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """One message waiting for its PUBACK."""

    id: int
    topic: str
    payload: bytes
    content_type: str
    priority: Priority
    created: float
    n_samples: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the queue holds now and its counters since the file was created."""

    depth: int
    bytes: int
    accepted_records: int
    accepted_samples: int
    acked_records: int
    acked_samples: int
    dropped_records: int
    dropped_samples: int


class DiskQueue:
    """A device's outbox on disk. Not thread-safe: use it from one thread (or one event loop)."""

    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 7 * 86_400.0,
        clock: Callable[[], float] = time.time,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        # the WAL file is truncated back to this after a checkpoint, so it cannot grow unbounded
        self._db.execute(f"PRAGMA journal_size_limit={4 * 1024 * 1024}")
        self._db.executescript(_SCHEMA)
        self._db.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
            [(c,) for c in (*_COUNTERS, *_JOURNAL)],
        )
        self._fsync = synchronous == "FULL"
        self._on_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []
        self._open_journal()
        self._tx_depth = 0
        #: records stored by this instance: a cheap "is there something new to send?"
        self.records_put = 0
        self._load_totals()

    def _load_totals(self) -> None:
        depth, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM records"
        ).fetchone()
        self._depth, self._bytes = int(depth), int(size)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several calls into one commit (nested calls join the outer transaction).

        A crash inside the block leaves the queue as it was before the block.
        """
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield
            finally:
                self._tx_depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._tx_depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._load_totals()
            for undo in self._on_rollback:
                undo()
            raise
        else:
            self._db.execute("COMMIT")
            for done in self._on_commit:
                done()
        finally:
            self._tx_depth = 0
            self._on_commit.clear()
            self._on_rollback.clear()

    def _bump(self, **deltas: int) -> None:
        self._db.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            [(delta, name) for name, delta in deltas.items() if delta],
        )

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        priority: Priority = Priority.TELEMETRY,
        n_samples: int = 0,
        content_type: str = CONTENT_TYPE_JSON,
    ) -> int | None:
        """Store a record durably; its id, or ``None`` when the byte cap refused it (counted).

        ``n_samples`` is how many samples the record carries (for the drop counters); samples
        are counted as accepted by :meth:`stage` when they arrive, not here.
        """
        size = len(payload) + len(topic.encode()) + RECORD_OVERHEAD_BYTES
        with self.transaction():
            self._expire()
            self._bump(accepted_records=1)
            if not self._make_room(size, priority):
                self._bump(dropped_records=1, dropped_samples=n_samples)
                return None
            cursor = self._db.execute(
                "INSERT INTO records (priority, created, topic, content_type, payload, size,"
                " n_samples) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (int(priority), self._clock(), topic, content_type, payload, size, n_samples),
            )
            self._depth += 1
            self._bytes += size
            self.records_put += 1
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def _make_room(self, size: int, priority: Priority) -> bool:
        need = self._bytes + size - self.max_bytes
        if need <= 0:
            return True
        if size > self.max_bytes:
            return False
        victims: list[tuple[int, int, int]] = []
        freed = 0
        rows = self._db.execute(
            "SELECT id, size, n_samples FROM records WHERE priority <= ? ORDER BY priority, id",
            (int(priority),),
        )
        for record_id, record_size, n_samples in rows:
            victims.append((record_id, record_size, n_samples))
            freed += record_size
            if freed >= need:
                break
        if freed < need:
            return False
        self._delete(victims, dropped=True)
        return True

    def _delete(self, records: Sequence[tuple[int, int, int]], *, dropped: bool) -> None:
        self._db.executemany("DELETE FROM records WHERE id = ?", [(r[0],) for r in records])
        samples = sum(r[2] for r in records)
        if dropped:
            self._bump(dropped_records=len(records), dropped_samples=samples)
        else:
            self._bump(acked_records=len(records), acked_samples=samples)
        self._depth -= len(records)
        self._bytes -= sum(r[1] for r in records)

    def _expire(self) -> None:
        cutoff = self._clock() - self.max_age_s
        stale = self._db.execute(
            "SELECT id, size, n_samples FROM records WHERE created < ?", (cutoff,)
        ).fetchall()
        if stale:
            self._delete(stale, dropped=True)

    def expire(self) -> None:
        """Drop (and count) the records older than ``max_age_s``."""
        with self.transaction():
            self._expire()

    def peek(self, limit: int, exclude: Collection[int] = ()) -> list[QueuedRecord]:
        """Up to ``limit`` records to send next: highest priority first, then oldest first.

        ``exclude`` names records already in flight. Stale records are expired first.
        """
        cutoff = self._clock() - self.max_age_s
        if self._depth and self._db.execute(
            "SELECT 1 FROM records WHERE created < ? LIMIT 1", (cutoff,)
        ).fetchone():
            self.expire()
        skip = list(exclude)
        marks = ",".join("?" * len(skip))
        rows = self._db.execute(
            "SELECT id, topic, payload, content_type, priority, created, n_samples FROM records"
            f" WHERE id NOT IN ({marks}) ORDER BY priority DESC, id LIMIT ?",
            (*skip, limit),
        ).fetchall()
        return [
            QueuedRecord(r[0], r[1], bytes(r[2]), r[3], Priority(r[4]), r[5], r[6]) for r in rows
        ]

    def ack(self, record_id: int) -> bool:
        """Forget a record the broker acknowledged; ``False`` if it was no longer queued."""
        return self._forget(record_id, dropped=False)

    def drop(self, record_id: int) -> bool:
        """Give up on a record (the broker refused it for good); counted as dropped."""
        return self._forget(record_id, dropped=True)

    def _forget(self, record_id: int, dropped: bool) -> bool:
        with self.transaction():
            row = self._db.execute(
                "SELECT id, size, n_samples FROM records WHERE id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return False
            self._delete([row], dropped=dropped)
            return True

    # --- samples accepted but not yet cut into a batch -------------------------------------

    def _journal_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.name}.staged-{generation}")

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def _open_journal(self) -> None:
        self._generation = self._counter("staged_generation")
        self._carried = self._counter("staged_carried")
        current = self._journal_path(self._generation)
        for stray in self.path.parent.glob(f"{self.path.name}.staged-*"):
            if stray != current:
                stray.unlink()  # left by a crash around a generation switch
        text = current.read_bytes() if current.exists() else b""
        if text and not text.endswith(b"\n"):
            # a write torn by a power cut: keep the whole lines before it
            text = text[: text.rfind(b"\n") + 1]
            current.write_bytes(text)
        self._staged_lines = text.count(b"\n")
        self._journal = os.open(current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    @staticmethod
    def _lines(rows: Sequence[StagedRow]) -> bytes:
        return b"".join(json.dumps([t, row]).encode() + b"\n" for t, row in rows)

    def stage(self, rows: Sequence[StagedRow]) -> None:
        """Journal samples that just arrived (and count them as accepted).

        They are on disk when this returns; a restarted agent finds them in :meth:`staged`.
        """
        if not rows:
            return
        os.write(self._journal, self._lines(rows))
        if self._fsync:
            os.fsync(self._journal)
        self._staged_lines += len(rows)

    def restage(self, rows: Sequence[StagedRow]) -> None:
        """Keep only ``rows`` staged: the rest were just cut into records.

        Call it in the :meth:`transaction` that puts those records, so that either both the
        records and the shorter journal count, or neither does.
        """
        with self.transaction():
            new_generation = self._generation + 1
            new_path = self._journal_path(new_generation)
            new_path.write_bytes(self._lines(rows))
            if self._fsync:
                with new_path.open("rb") as written:
                    os.fsync(written.fileno())
            self._bump(accepted_samples=self._staged_lines - self._carried)
            self._db.executemany(
                "UPDATE counters SET value = ? WHERE name = ?",
                [(new_generation, "staged_generation"), (len(rows), "staged_carried")],
            )
            old_path, old_fd = self._journal_path(self._generation), self._journal

            def switch() -> None:
                os.close(old_fd)
                old_path.unlink(missing_ok=True)
                self._generation, self._carried = new_generation, len(rows)
                self._staged_lines = len(rows)
                self._journal = os.open(new_path, os.O_WRONLY | os.O_APPEND)

            self._on_commit.append(switch)
            self._on_rollback.append(lambda: new_path.unlink(missing_ok=True))

    def staged(self) -> list[StagedRow]:
        """The samples staged and not yet cut into a record, oldest first."""
        path = self._journal_path(self._generation)
        if not path.exists():
            return []
        return [(float(t), list(row)) for t, row in
                (json.loads(line) for line in path.read_bytes().splitlines() if line)]

    # --- introspection ---------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records waiting."""
        return self._depth

    @property
    def bytes(self) -> int:
        """Bytes charged against ``max_bytes`` by the records waiting."""
        return self._bytes

    def stats(self) -> QueueStats:
        """Current depth and bytes, and the counters kept across restarts."""
        counters = {name: int(value) for name, value in
                    self._db.execute("SELECT name, value FROM counters").fetchall()}
        # journalled samples not yet folded into the counter by a restage
        counters["accepted_samples"] += self._staged_lines - self._carried
        return QueueStats(depth=self._depth, bytes=self._bytes,
                          **{name: counters[name] for name in _COUNTERS})

    def close(self) -> None:
        """Close the files (committed records and staged samples stay)."""
        os.close(self._journal)
        self._db.close()

    def __enter__(self) -> DiskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
