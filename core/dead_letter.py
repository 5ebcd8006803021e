"""Counted, logged drops: a bad message never crashes ingest and never goes unnoticed.

>>> dl = DeadLetters()
>>> dl.record("invalid", "forewarn/v1/a/b/telemetry", "t: field required", b"{}")
>>> dict(dl.counts)
{'invalid': 1}
>>> dl.recent[0].reason
'invalid'
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass

__all__ = ["DeadLetter", "DeadLetters"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dropped message, kept (truncated) for inspection."""

    reason: str
    topic: str
    detail: str
    payload_head: bytes


class DeadLetters:
    """Counts drops by reason and keeps the most recent ones."""

    def __init__(self, keep: int = 100) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)

    @property
    def total(self) -> int:
        """All drops, whatever the reason."""
        return sum(self.counts.values())

    def record(self, reason: str, topic: str, detail: str, payload: bytes) -> None:
        """Count and log one drop."""
        self.counts[reason] += 1
        self.recent.append(DeadLetter(reason, topic, detail[:500], payload[:200]))
        # log the first of each reason loudly, then every 1000th, so a flood does not flood logs
        n = self.counts[reason]
        if n == 1 or n % 1000 == 0:
            _log.warning("dead-lettered %s message #%d on %s: %s", reason, n, topic, detail[:200])

    def __repr__(self) -> str:
        return f"DeadLetters({dict(self.counts)})"
