"""The rules pipeline, wired in one place: scored batch → rule evaluation → case (+ outbox).

Delivery is separate (:class:`rules.outbox.Outbox`), so a slow channel never holds up ingest.

Usage::

    rules = RulesPipeline(load_rules(path), CaseBook(connect(url), "terminal", time.time))
    await rules.handle(scored_batch)      # the sink core calls for every batch
"""

from __future__ import annotations

from core.events import ScoredBatch
from rules.cases import CaseBook
from rules.db import CaseRow
from rules.evaluate import RuleEvaluator
from rules.model import RuleSet

__all__ = ["RulesPipeline"]


class RulesPipeline:
    """Evaluates rules over every scored batch and opens cases for new alarms."""

    def __init__(self, rules: RuleSet, casebook: CaseBook) -> None:
        self.evaluator = RuleEvaluator(rules.rules)
        self.casebook = casebook
        self.alarms = 0
        self.opened: list[CaseRow] = []

    async def handle(self, batch: ScoredBatch) -> None:
        """The stage chain for one batch."""
        for alarm in self.evaluator.evaluate(batch):
            self.alarms += 1
            case = self.casebook.open_case(alarm)
            if case is not None:
                self.opened.append(case)
