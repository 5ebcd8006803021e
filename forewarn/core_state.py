"""The direct engine's state across restarts, as one async context the wiring enters.

Entering restores the pipeline's snapshot and dedup journal from ``[core] state_dir`` and
starts the periodic snapshot (``[core] snapshot_interval_s``); leaving (SIGTERM, SIGINT) saves a
last snapshot. The mechanics are :class:`core.checkpoint.Checkpoint`'s.

Usage::

    async with KeptState(settings.core, pipeline) as kept:
        service = CoreService(mqtt, pipeline, rules.handle_in_thread, on_handled=kept.commit)
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

from core.checkpoint import Checkpoint
from core.pipeline import CorePipeline
from forewarn.errors import unusable_path
from forewarn.settings import CoreSettings

__all__ = ["KeptState"]

_log = logging.getLogger(__name__)


class KeptState:
    """Restores the pipeline on entry, snapshots it periodically and on exit."""

    def __init__(self, settings: CoreSettings, pipeline: CorePipeline) -> None:
        self.checkpoint = Checkpoint(settings.state_dir, pipeline)
        self.interval_s = settings.snapshot_interval_s
        self._stop = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None

    def commit(self) -> None:
        """Journal the batches handed on so far (call before acknowledging their messages)."""
        self.checkpoint.commit()

    async def __aenter__(self) -> KeptState:
        try:
            restored = self.checkpoint.restore()
        except OSError as exc:  # a file in the way, no permission, a read-only disk
            raise unusable_path("[core] state_dir", self.checkpoint.state_dir, exc) from exc
        if restored.snapshot_at is None:
            _log.info("state: no snapshot in %s; detectors start learning",
                      self.checkpoint.state_dir)
        else:
            _log.info("state restored: %d series from a snapshot %.0f s old, "
                      "%d batches journalled after it",
                      restored.series, time.time() - restored.snapshot_at,
                      restored.journal_batches)
        self._saver = asyncio.create_task(self.checkpoint.keep_saving(self.interval_s,
                                                                      self._stop))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._saver is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        try:
            size = await self.checkpoint.save()
            _log.info("state saved on the way out: %d bytes in %s; %d duplicate batches "
                      "dropped since start", size, self.checkpoint.snapshot_path,
                      self.checkpoint.pipeline.stats.duplicate_batches)
        except OSError as exc:
            _log.error("state not saved on the way out (%s); the last snapshot stays", exc)
        finally:
            self.checkpoint.close()
