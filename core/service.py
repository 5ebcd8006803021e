"""The core service, wired in one place: MQTT ingest → pipeline (decode, dedup, detect, store)
→ sink (the rules pipeline, handed in by the application shell).

Usage::

    service = CoreService(mqtt_config, pipeline, sink=rules.handle)
    task = asyncio.create_task(service.run())
    await service.ingestor.connected.wait()
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.config import MqttConfig
from core.events import EventSink
from core.ingest import Ingestor
from core.pipeline import CorePipeline

__all__ = ["CoreService"]

_log = logging.getLogger(__name__)


class CoreService:
    """Runs the ingest loop until cancelled."""

    def __init__(self, mqtt: MqttConfig, pipeline: CorePipeline, sink: EventSink,
                 on_handled: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        self.sink = sink
        #: called after each message is stored and handed on, before it is acknowledged
        #: (the direct engine journals its batches there, :mod:`core.checkpoint`)
        self.on_handled = on_handled
        self.ingestor = Ingestor(mqtt)

    async def run(self) -> None:
        """Consume telemetry forever (cancel the task to stop)."""
        async with self.ingestor as ingestor:
            async for topic, payload in ingestor.messages():
                scored = self.pipeline.process_payload(topic, payload)
                if scored is not None:
                    await self.sink(scored)
                if self.on_handled is not None:
                    self.on_handled()
