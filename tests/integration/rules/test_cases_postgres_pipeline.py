"""The whole pipeline on PostgreSQL: alarm states upserted and read back after a restart, the
case opened once, resolved, reopened; silences stored for every process."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.db import connect
from rules.model import Silence, parse_rules
from rules.pipeline import RulesPipeline
from rules.silence import SilenceStore

pytestmark = pytest.mark.integration

RULES = parse_rules("""
rules:
  - {name: hot, score_at_least: 0.8, for: 60s, resolve_after: 120s}
cases: {reopen_within: 1d}
""")


def batch(device: str, t0: float, scores: list[float]) -> ScoredBatch:
    s = np.array(scores, dtype=np.float64).reshape(-1, 1)
    t = t0 + np.arange(len(scores), dtype=np.float64) * 60.0
    return ScoredBatch("acme", device, "heat_pump", ("a",), t, np.ones_like(s), s)


def test_pipeline_restarts_on_postgres(postgres_url: str) -> None:
    engine = connect(postgres_url)
    try:
        now = [0.0]

        def pipeline() -> RulesPipeline:
            return RulesPipeline(RULES, CaseBook(engine, "terminal", lambda: now[0]))

        first = pipeline()
        first.handle(batch("hp-1", 0.0, [0.9, 0.9]))
        assert first.stats.opened == 1
        second = pipeline()  # a restart: the firing alarm is read back, not replayed
        assert second.evaluator.status("hot", "acme", "hp-1") == "firing"
        second.handle(batch("hp-1", 120.0, [0.9, 0.1, 0.1, 0.1]))
        second.handle(batch("hp-1", 600.0, [0.9, 0.9]))
        assert (second.stats.opened, second.stats.resolved, second.stats.reopened) == (0, 1, 1)
        [case] = second.casebook.cases()
        assert (case.status, case.reopened) == ("open", 1)

        SilenceStore(engine).add(Silence(
            name="storm", kind="silence", devices=("hp-2",),
            start=datetime(1970, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC)),
            by="lee", now=0.0)
        third = pipeline()
        third.handle(batch("hp-2", 0.0, [0.9, 0.9]))
        assert (third.stats.opened, third.stats.silenced) == (0, 1)
    finally:
        engine.dispose()
