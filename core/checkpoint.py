"""The direct engine's learned state on disk: a snapshot file and a journal of batches since.

The direct MQTT engine has no stream to replay: a message core has acknowledged is gone from
the broker. So core keeps two things in its state directory (``[core] state_dir``):

- ``core-state.npz``: the pipeline's snapshot in the one snapshot format
  (:mod:`core.snapshot`, as the NATS workers write it), saved every ``snapshot_interval_s`` and
  at shutdown, atomically (temporary file, fsync, rename);
- ``dedup-<generation>.journal``: one line per batch handed to the rules since that snapshot,
  appended before the batch's message is acknowledged to the broker.

At start :meth:`Checkpoint.restore` loads the snapshot and replays the journals into the
duplicate filter. A message redelivered after a crash (received, stored and handed to the
rules, its acknowledgement never sent) is then dropped as a duplicate, and the detectors go
on from the snapshot: a crash costs at most ``snapshot_interval_s`` of learning, never a new
warm-up. The journal is flushed to the operating system, not fsynced: it survives the process
being killed, not the machine losing power (then the batches of the last seconds may be
processed twice, which the store's upsert and the case key absorb).

A batch the duplicate filter accepted but whose rules hand-off has not finished is left out of
a snapshot taken meanwhile, so its redelivery is processed rather than dropped.

Usage::

    checkpoint = Checkpoint(Path("var/state"), pipeline)
    checkpoint.restore()
    ...  # process a message, store it, hand it to the rules
    checkpoint.commit()          # then acknowledge the message
    await checkpoint.save()      # every snapshot_interval_s and at shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.pipeline import CorePipeline
from core.snapshot import Snapshot, decode_snapshot, encode_snapshot

__all__ = ["Checkpoint", "Restored"]

_log = logging.getLogger(__name__)

SNAPSHOT_FILE = "core-state.npz"
_JOURNAL_GLOB = "dedup-*.journal"


@dataclass(frozen=True, slots=True)
class Restored:
    """What :meth:`Checkpoint.restore` found."""

    #: when the snapshot was taken (epoch s); None: there was none (a first start)
    snapshot_at: float | None
    series: int
    #: batches of the journals written after the snapshot
    journal_batches: int


class Checkpoint:
    """Saves and restores one pipeline's learned state in ``state_dir``."""

    def __init__(self, state_dir: Path, pipeline: CorePipeline,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.pipeline = pipeline
        self.clock = clock
        #: batches accepted by the duplicate filter and not yet journalled
        self._pending: list[tuple[str, str, str, int]] = []
        pipeline.dedup.accepted = self._pending
        self._generation = 0
        self._journal: TextIO | None = None
        self._saving = asyncio.Lock()
        self.saves = 0
        self.snapshot_bytes = 0

    @property
    def snapshot_path(self) -> Path:
        """The snapshot file."""
        return self.state_dir / SNAPSHOT_FILE

    def _journals(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.state_dir.glob(_JOURNAL_GLOB):
            with contextlib.suppress(ValueError):
                found.append((int(path.stem.split("-", 1)[1]), path))
        return sorted(found)

    def restore(self) -> Restored:
        """Load the snapshot and the journals after it (creates ``state_dir``)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        snapshot_at: float | None = None
        if self.snapshot_path.exists():
            try:
                snapshot = decode_snapshot(self.snapshot_path.read_bytes())
                self.pipeline.load_state(snapshot.state)
                snapshot_at = snapshot.created_at
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                _log.error("state snapshot %s unreadable (%s); detectors start from scratch",
                           self.snapshot_path, exc)
        dedup = self.pipeline.dedup
        duplicates_before = dedup.duplicates
        batches = 0
        for generation, path in self._journals():
            self._generation = max(self._generation, generation)
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    tenant, device_id, boot_id, seq = json.loads(line)
                except ValueError:
                    continue  # a line torn by the crash: its message was not acknowledged
                dedup.is_new(str(tenant), str(device_id), str(boot_id), int(seq))
                batches += 1
        dedup.duplicates = duplicates_before
        self._pending.clear()  # replayed marks are journalled already
        self._open_journal(self._generation + 1)
        return Restored(snapshot_at, len(self.pipeline.series.items()), batches)

    def _open_journal(self, generation: int) -> None:
        if self._journal is not None:
            self._journal.close()
        self._generation = generation
        path = self.state_dir / f"dedup-{generation:010d}.journal"
        self._journal = path.open("a", encoding="utf-8")

    def commit(self) -> None:
        """Journal the batches handed on since the last call (before acknowledging them)."""
        if not self._pending:
            return
        if self._journal is None:
            self._open_journal(self._generation + 1)
        assert self._journal is not None
        self._journal.write("".join(json.dumps(mark) + "\n" for mark in self._pending))
        self._journal.flush()
        self._pending.clear()

    async def save(self) -> int:
        """Write a snapshot, then drop the journals it covers; returns its size in bytes."""
        async with self._saving:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            state = self.pipeline.state()
            for tenant, device_id, boot_id, seq in self._pending:
                # accepted but not yet handed on: its redelivery must be processed
                seen = state.dedup.get((tenant, device_id, boot_id))
                if seen is not None and seq in seen[1]:
                    seen[1].remove(seq)
            covered = self._generation
            self._open_journal(covered + 1)  # commits from here on are after the snapshot
            snapshot = Snapshot(partition=0, stream_seq=0, created_at=self.clock(), state=state)
            size = await asyncio.to_thread(self._write, snapshot)
            for generation, path in self._journals():
                if generation <= covered:
                    path.unlink(missing_ok=True)
            self.saves += 1
            self.snapshot_bytes = size
            return size

    def _write(self, snapshot: Snapshot) -> int:
        blob = encode_snapshot(snapshot)
        temporary = self.snapshot_path.with_name(SNAPSHOT_FILE + ".tmp")
        with temporary.open("wb") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.snapshot_path)
        directory = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return len(blob)

    async def keep_saving(self, every_s: float, stop: asyncio.Event) -> None:
        """Save every ``every_s`` until ``stop`` is set (the last save is the caller's)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            if stop.is_set():
                return
            try:
                size = await self.save()
                _log.debug("state snapshot saved: %d bytes", size)
            except OSError as exc:
                # the previous snapshot and its journals stay; the next save tries again
                _log.warning("state snapshot not saved (%s)", exc)

    def close(self) -> None:
        """Close the journal (what is pending was not handed on: its redelivery is processed)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
