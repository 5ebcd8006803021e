"""A tenant's dead letters for the console: the messages core refused under its topics, and why.

Core persists every message it refuses in the case database (``core/dead_letter.py``); the
console shows a logged-in user the newest of those published under their tenant's topics
(``forewarn/v1/{tenant}/…``) with counts by reason, on ``/deadletters`` and at
``GET /api/v1/deadletters``. The payload's first bytes are shown as text (undecodable bytes
escaped), never interpreted: the page's autoescaping renders a ``<script>`` in them as text.
"""

from __future__ import annotations

from pydantic import BaseModel

from core.dead_letter import DeadLetter, DeadLetterStore
from edge.schema import TOPIC_ROOT
from forewarn.console.context import ConsoleContext

__all__ = ["DeadLetterOut", "DeadLetterPage", "tenant_dead_letters"]


class DeadLetterOut(BaseModel):
    """One refused message: when (epoch s), why, on which topic, and its first bytes."""

    ts: float
    reason: str
    topic: str
    detail: str
    payload_head: str


class DeadLetterPage(BaseModel):
    """A tenant's kept dead letters by reason, and the newest of them."""

    counts: dict[str, int]
    items: list[DeadLetterOut]


def _out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(ts=letter.ts, reason=letter.reason, topic=letter.topic,
                         detail=letter.detail,
                         payload_head=letter.payload_head.decode("utf-8", "backslashreplace"))


def tenant_dead_letters(ctx: ConsoleContext, tenant: str, reason: str | None = None,
                        limit: int = 50) -> DeadLetterPage:
    """The newest ``limit`` dead letters under ``tenant``'s topics (of one reason or all)."""
    store = DeadLetterStore(ctx.engine)
    prefix = f"{TOPIC_ROOT}/{tenant}/"
    return DeadLetterPage(counts=store.counts_under(prefix),
                          items=[_out(d) for d in store.letters(reason, limit, prefix)])
