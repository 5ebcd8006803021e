"""The core service, wired in one place: MQTT ingest → pipeline (decode, dedup, detect, store)
→ sink (the rules pipeline, handed in by the application shell).

Usage::

    service = CoreService(mqtt_config, pipeline, sink=rules.handle_in_thread)
    task = asyncio.create_task(service.run())
    await service.ingestor.connected.wait()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.config import MqttConfig
from core.events import EventSink
from core.ingest import Ingestor
from core.pipeline import CorePipeline
from edge.tasks import cancel_and_wait

__all__ = ["CoreService"]

_log = logging.getLogger(__name__)


class CoreService:
    """Runs the ingest loop until cancelled."""

    def __init__(self, mqtt: MqttConfig, pipeline: CorePipeline, sink: EventSink,
                 on_handled: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        self.sink = sink
        #: called after each group of messages is stored and handed on, before it is
        #: acknowledged (the direct engine journals its batches there, :mod:`core.checkpoint`)
        self.on_handled = on_handled
        self.ingestor = Ingestor(mqtt)

    async def run(self) -> None:
        """Consume telemetry forever (cancel the task to stop).

        A message that cannot be used is dead-lettered by the pipeline; one the rules fail on
        is dead-lettered here (``rules_failed``): neither ends the loop.
        """
        flusher = asyncio.create_task(self._flush_dead_letters())
        try:
            async with self.ingestor as ingestor:
                # what waits at the broker comes in groups, whose mapped readings the
                # pipeline coalesces per device; a group is acknowledged once handled
                async for group in ingestor.groups():
                    for scored, topic, payload in self.pipeline.process_group(group):
                        try:
                            await self.sink(scored)
                        except Exception as exc:  # foreign code: the batch is stored, go on
                            _log.exception("the rules failed on a batch of %s", topic[:200])
                            self.pipeline.dead_letters.record("rules_failed", topic,
                                                              repr(exc), payload)
                    if self.on_handled is not None:
                        self.on_handled()
        finally:
            await cancel_and_wait([flusher])
            self.pipeline.dead_letters.flush()

    async def _flush_dead_letters(self, every_s: float = 1.0) -> None:
        """Persist dead letters that arrived since the last write, once a second."""
        while True:
            await asyncio.sleep(every_s)
            self.pipeline.dead_letters.flush()
