"""A bounded, on-disk queue of scored batches that survives a restart: one SQLite file.

``spool.sqlite`` in WAL mode with ``synchronous=NORMAL``, the edge queue's idiom
(:mod:`edge.queue`): an append is one committed row, so a process killed at any point leaves
every append that returned in place and nothing half-written; only a power cut may lose the
last appends. Each row holds one self-checking record (``header | JSON | arrays | crc32``,
:func:`encode_record`); a record that fails its checksum anyway is skipped, dropped and counted.
Replay after a crash may hand out the batch that was being replayed once more; the stores'
writes are idempotent, so that is safe. A spool directory left by an older forewarn (segment
files and a cursor) is imported into the database when it is opened.

>>> import tempfile, numpy as np
>>> from core.events import ScoredBatch
>>> batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.array([1.0]), np.array([[2.0]]),
...                     np.array([[0.5]]))
>>> with tempfile.TemporaryDirectory() as tmp:
...     with Spool(Path(tmp), max_bytes=1 << 20) as spool:
...         spool.append(batch), len(spool)
...     with Spool(Path(tmp), max_bytes=1 << 20) as spool:  # still there after a restart
...         [b.values.tolist() for b in spool.peek(10)], spool.pop(1), len(spool)
(True, 1)
([[[2.0]]], None, 0)
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

import numpy as np

from core.events import DetectorEvent, ScoredBatch

__all__ = ["SPOOL_FILE", "Spool", "decode_record", "encode_record"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sII")  # magic, JSON length, array bytes length
_MAGIC = b"FWS1"
_CRC = struct.Struct("<I")
#: the database file inside the spool directory
SPOOL_FILE = "spool.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    n_samples INTEGER NOT NULL,
    record BLOB NOT NULL
);
"""


def encode_record(batch: ScoredBatch) -> bytes:
    """One batch as a self-checking record."""
    meta = {
        "tenant": batch.tenant,
        "device_id": batch.device_id,
        "product": batch.product,
        "fields": list(batch.fields),
        "n": batch.n_samples,
        "events": [asdict(event) for event in batch.events],
    }
    header_json = json.dumps(meta, separators=(",", ":")).encode()
    arrays = b"".join(
        np.ascontiguousarray(array, dtype="<f8").tobytes()
        for array in (batch.t, batch.values, batch.scores)
    )
    body = _HEADER.pack(_MAGIC, len(header_json), len(arrays)) + header_json + arrays
    return body + _CRC.pack(zlib.crc32(body))


def decode_record(record: bytes) -> ScoredBatch:
    """The batch :func:`encode_record` wrote; ``ValueError`` if the record is damaged."""
    if len(record) < _HEADER.size + _CRC.size:
        raise ValueError("spool record too short")
    body, (crc,) = record[: -_CRC.size], _CRC.unpack(record[-_CRC.size :])
    if zlib.crc32(body) != crc:
        raise ValueError("spool record fails its checksum")
    magic, n_json, n_arrays = _HEADER.unpack_from(body)
    if magic != _MAGIC:
        raise ValueError("not a spool record")
    meta = json.loads(body[_HEADER.size : _HEADER.size + n_json])
    flat = np.frombuffer(body, dtype="<f8", offset=_HEADER.size + n_json, count=n_arrays // 8)
    n, k = int(meta["n"]), len(meta["fields"])
    t, values, scores = np.split(flat.astype(np.float64), [n, n + n * k])
    return ScoredBatch(
        tenant=meta["tenant"],
        device_id=meta["device_id"],
        product=meta["product"],
        fields=tuple(meta["fields"]),
        t=t,
        values=values.reshape(n, k),
        scores=scores.reshape(n, k),
        events=tuple(DetectorEvent(**event) for event in meta["events"]),
    )


class Spool:
    """FIFO of batches on disk, at most ``max_bytes`` of pending records.

    ``append`` refuses (returns False) when the record would exceed the cap: the caller counts
    the drop. ``peek(n)`` returns the oldest pending batches, ``pop(n)`` forgets them for good.
    One writer and one reader at a time (the :class:`~core.store.buffered.BufferedStore`).
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        #: records found damaged (failing their checksum), skipped and dropped
        self.damaged = 0
        self._db = sqlite3.connect(self.directory / SPOOL_FILE, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed; a power cut may
        # lose the last ones (the edge queue's default too)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count, self._nbytes, self._samples = self._db.execute(
            "SELECT count(*), coalesce(sum(length(record)), 0), coalesce(sum(n_samples), 0)"
            " FROM records").fetchone()
        _import_segments(self)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._count)

    @property
    def nbytes(self) -> int:
        """Bytes of pending records."""
        return int(self._nbytes)

    @property
    def n_samples(self) -> int:
        """Samples in pending records."""
        return int(self._samples)

    def append(self, batch: ScoredBatch) -> bool:
        """Add a batch at the end; False (nothing written) if it would pass ``max_bytes``."""
        record = encode_record(batch)
        if self._nbytes + len(record) > self.max_bytes:
            return False
        self._db.execute("INSERT INTO records (n_samples, record) VALUES (?, ?)",
                         (batch.n_samples, record))
        self._count += 1
        self._nbytes += len(record)
        self._samples += batch.n_samples
        return True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Appends inside the block are one commit (all or none after a crash)."""
        counts = self._count, self._nbytes, self._samples
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._count, self._nbytes, self._samples = counts
            raise
        self._db.execute("COMMIT")

    def peek(self, n: int) -> list[ScoredBatch]:
        """The ``n`` oldest pending batches (fewer if fewer are pending), oldest first."""
        batches = []
        for row_id, record in self._db.execute(
                "SELECT id, record FROM records ORDER BY id LIMIT ?", (n,)).fetchall():
            try:
                batches.append(decode_record(record))
            except ValueError:
                self.damaged += 1
                log.warning("spool record %d damaged (%d bytes); dropped", row_id, len(record))
                self._delete("WHERE id = ?", (row_id,))
        return batches

    def pop(self, n: int) -> None:
        """Forget the ``n`` oldest pending batches (they reached the store)."""
        self._delete("WHERE id IN (SELECT id FROM records ORDER BY id LIMIT ?)", (n,))

    def close(self) -> None:
        """Close the database; pending records stay on disk for the next start."""
        self._db.close()

    def _delete(self, where: str, args: tuple[int, ...]) -> None:
        gone = self._db.execute(
            f"DELETE FROM records {where} RETURNING length(record), n_samples", args).fetchall()
        self._count -= len(gone)
        self._nbytes -= sum(size for size, _ in gone)
        self._samples -= sum(samples for _, samples in gone)


def _import_segments(spool: Spool) -> None:
    """Move a spool an older forewarn left (``*.seg`` files from the cursor on) into ``spool``."""
    segments = sorted(p for p in spool.directory.glob("*.seg") if p.stem.isdigit())
    if not segments:
        return
    cursor_path = spool.directory / "cursor.json"
    try:
        cursor = json.loads(cursor_path.read_text()) if cursor_path.exists() else {}
    except (ValueError, OSError):
        cursor = {}
    start_segment, start_offset = int(cursor.get("segment", 0)), int(cursor.get("offset", 0))
    imported = 0
    spool._db.execute("BEGIN IMMEDIATE")
    for path in segments:
        segment = int(path.stem)
        data = path.read_bytes() if segment >= start_segment else b""
        offset = start_offset if segment == start_segment else 0
        while offset + _HEADER.size <= len(data):
            _magic, n_json, n_arrays = _HEADER.unpack_from(data, offset)
            length = _HEADER.size + n_json + n_arrays + _CRC.size
            try:
                batch = decode_record(data[offset : offset + length])
            except (ValueError, struct.error):
                spool.damaged += 1  # a torn tail: what follows in this segment is lost
                break
            spool._db.execute("INSERT INTO records (n_samples, record) VALUES (?, ?)",
                              (batch.n_samples, data[offset : offset + length]))
            spool._count += 1
            spool._nbytes += length
            spool._samples += batch.n_samples
            imported += 1
            offset += length
    spool._db.execute("COMMIT")
    for path in segments:
        path.unlink()
    cursor_path.unlink(missing_ok=True)
    log.info("spool %s: %d batches imported from the segment files of an older forewarn",
             spool.directory, imported)
