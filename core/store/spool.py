"""A bounded, append-only, on-disk queue of scored batches that survives a restart.

Records go into segment files (``000000000001.seg`` …) as ``header | JSON | arrays | crc32``;
a cursor file remembers how far replay got. A record torn by a crash fails its checksum and is
skipped (and counted) when the spool is opened again. Replay after a crash may hand out the
record that was being replayed once more; the stores' writes are idempotent, so that is safe.

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
import os
import struct
import zlib
from collections import deque
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

import numpy as np

from core.events import DetectorEvent, ScoredBatch

__all__ = ["Spool", "decode_record", "encode_record"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sII")  # magic, JSON length, array bytes length
_MAGIC = b"FWS1"
_CRC = struct.Struct("<I")
_CURSOR = "cursor.json"


class _Slot(NamedTuple):
    segment: int
    offset: int
    length: int
    n_samples: int


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

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 8 << 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        #: records found damaged (torn by a crash) and skipped when opening
        self.damaged = 0
        self._pending: deque[_Slot] = deque()
        self._nbytes = 0
        self._writer: IO[bytes] | None = None
        self._writer_segment = 0
        self._writer_size = 0
        self._load()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def nbytes(self) -> int:
        """Bytes of pending records."""
        return self._nbytes

    @property
    def n_samples(self) -> int:
        """Samples in pending records."""
        return sum(slot.n_samples for slot in self._pending)

    def append(self, batch: ScoredBatch) -> bool:
        """Add a batch at the end; False (nothing written) if it would pass ``max_bytes``."""
        record = encode_record(batch)
        if self._nbytes + len(record) > self.max_bytes:
            return False
        if self._writer is None or self._writer_size + len(record) > self.segment_bytes:
            self._open_segment(self._last_segment() + 1)
        assert self._writer is not None
        offset = self._writer_size
        self._writer.write(record)
        self._writer.flush()
        self._writer_size += len(record)
        self._pending.append(_Slot(self._writer_segment, offset, len(record), batch.n_samples))
        self._nbytes += len(record)
        return True

    def peek(self, n: int) -> list[ScoredBatch]:
        """The ``n`` oldest pending batches (fewer if fewer are pending), oldest first."""
        batches = []
        handles: dict[int, IO[bytes]] = {}
        try:
            for slot in list(self._pending)[:n]:
                handle = handles.get(slot.segment)
                if handle is None:
                    handle = handles[slot.segment] = self._segment_path(slot.segment).open("rb")
                handle.seek(slot.offset)
                batches.append(decode_record(handle.read(slot.length)))
        finally:
            for handle in handles.values():
                handle.close()
        return batches

    def pop(self, n: int) -> None:
        """Forget the ``n`` oldest pending batches (they reached the store)."""
        for _ in range(min(n, len(self._pending))):
            slot = self._pending.popleft()
            self._nbytes -= slot.length
        self._save_cursor()
        self._remove_consumed_segments()

    def close(self) -> None:
        """Close the open segment; pending records stay on disk for the next start."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- files ---------------------------------------------------------------------------------

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.seg"

    def _segments(self) -> list[int]:
        paths = self.directory.glob("*.seg")
        return sorted(int(path.stem) for path in paths if path.stem.isdigit())

    def _last_segment(self) -> int:
        segments = self._segments()
        return max(segments[-1] if segments else 0, self._writer_segment)

    def _open_segment(self, segment: int) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = self._segment_path(segment).open("ab")
        self._writer_segment = segment
        self._writer_size = 0

    def _save_cursor(self) -> None:
        head = self._pending[0] if self._pending else None
        cursor = (
            {"segment": head.segment, "offset": head.offset}
            if head is not None
            else {"segment": self._writer_segment + 1, "offset": 0}
        )
        tmp = self.directory / (_CURSOR + ".tmp")
        tmp.write_text(json.dumps(cursor))
        os.replace(tmp, self.directory / _CURSOR)

    def _remove_consumed_segments(self) -> None:
        first_needed = self._pending[0].segment if self._pending else None
        for segment in self._segments():
            if first_needed is not None and segment >= first_needed:
                break
            if segment == self._writer_segment and self._writer is not None:
                self._writer.close()
                self._writer = None
            self._segment_path(segment).unlink(missing_ok=True)

    def _load(self) -> None:
        """Index the pending records of a spool left by an earlier run."""
        cursor_path = self.directory / _CURSOR
        cursor = {"segment": 0, "offset": 0}
        if cursor_path.exists():
            try:
                cursor = json.loads(cursor_path.read_text())
            except (ValueError, OSError):
                log.warning("spool cursor %s unreadable; replaying the whole spool", cursor_path)
        for segment in self._segments():
            if segment < cursor["segment"]:
                self._segment_path(segment).unlink(missing_ok=True)
                continue
            offset = cursor["offset"] if segment == cursor["segment"] else 0
            self._index_segment(segment, offset)
            self._writer_segment = segment
        # new segments must come after the cursor, or the next start would delete them
        self._writer_segment = max(self._writer_segment, int(cursor["segment"]) - 1)

    def _index_segment(self, segment: int, offset: int) -> None:
        data = self._segment_path(segment).read_bytes()
        while offset + _HEADER.size <= len(data):
            magic, n_json, n_arrays = _HEADER.unpack_from(data, offset)
            length = _HEADER.size + n_json + n_arrays + _CRC.size
            if magic != _MAGIC or offset + length > len(data):
                break
            try:
                batch = decode_record(data[offset : offset + length])
            except ValueError:
                break
            self._pending.append(_Slot(segment, offset, length, batch.n_samples))
            self._nbytes += length
            offset += length
        if offset < len(data):
            # a torn tail: keep what is whole, never append after the damage
            self.damaged += 1
            log.warning("spool segment %s damaged after byte %d; the rest is lost", segment, offset)
