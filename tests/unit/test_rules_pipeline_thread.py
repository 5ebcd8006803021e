"""A service's rules sink runs the pipeline off the event loop, one call at a time, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.db import connect
from rules.model import parse_rules
from rules.pipeline import RulesPipeline


class Recording(RulesPipeline):
    """Notes which thread ran each call and whether two calls ever overlapped."""

    calls: list[tuple[str, float, int]]
    busy = False
    overlapped = False

    def handle(self, batch: ScoredBatch) -> None:
        self._enter(("handle", float(batch.t[0])))
        try:
            super().handle(batch)
        finally:
            self.busy = False

    def tick(self, now: float, tenant: str = "") -> None:
        self._enter(("tick", now))
        try:
            super().tick(now, tenant)
        finally:
            self.busy = False

    def _enter(self, call: tuple[str, float]) -> None:
        self.overlapped = self.overlapped or self.busy
        self.busy = True
        self.calls.append((*call, threading.get_ident()))
        time.sleep(0.001)  # long enough for an overlap to show


def test_the_sink_runs_handle_and_tick_on_one_thread_off_the_loop(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    pipeline = Recording(parse_rules("rules: [{name: r, score_at_least: 0.8, for: 0}]"),
                         CaseBook(engine, "terminal", time.time))
    pipeline.calls = []

    async def serve() -> int:
        batches = [ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.array([float(i)]),
                               np.ones((1, 1)), np.array([[0.9 if i == 5 else 0.1]]))
                   for i in range(20)]

        async def ticks() -> None:
            for k in range(5):
                await pipeline.tick_in_thread(1000.0 + k)

        ticking = asyncio.create_task(ticks())
        for batch in batches:
            await pipeline.handle_in_thread(batch)
        await ticking
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(serve())
    finally:
        pipeline.close()
        engine.dispose()
    threads = {ident for *_, ident in pipeline.calls}
    assert len(threads) == 1 and loop_thread not in threads
    assert not pipeline.overlapped
    assert [t for kind, t, _ in pipeline.calls if kind == "handle"] == [float(i) for i in range(20)]
    assert len(pipeline.calls) == 25
    assert [c.device_id for c in pipeline.casebook.cases()] == ["hp-1"]
