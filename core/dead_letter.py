"""Counted, logged and persisted drops: a bad message never crashes ingest and never goes unnoticed.

:class:`DeadLetters` counts drops by reason (the counters ``/metrics`` shows) and keeps the
last few in memory; given a :class:`DeadLetterStore` it also writes every drop (reason, time,
topic, what was wrong and the payload's first bytes) to a SQL table, in batches so that a
flood of bad messages costs one insert per batch, not one commit per message. The store lives
in whatever database the application shell hands in (the case database: SQLite on one
machine, PostgreSQL when NATS workers share it); ``forewarn deadletters list`` reads it.

>>> import itertools
>>> from sqlalchemy import create_engine
>>> store = DeadLetterStore(create_engine("sqlite://"), keep=1000)
>>> tick = itertools.count(1_700_000_000)
>>> dl = DeadLetters(store=store, clock=lambda: float(next(tick)))
>>> dl.record("invalid", "forewarn/v1/a/b/telemetry", "t: field required", b"{}")
>>> dict(dl.counts), dl.recent[0].reason
({'invalid': 1}, 'invalid')
>>> dl.flush()
>>> [(d.reason, d.topic, d.payload_head) for d in store.letters()]
[('invalid', 'forewarn/v1/a/b/telemetry', b'{}')]
>>> store.counts()
{'invalid': 1}
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

__all__ = ["HEAD_BYTES", "DeadLetter", "DeadLetterStore", "DeadLetters"]

_log = logging.getLogger(__name__)

#: bytes of a payload kept with its dead letter (enough to recognise it, not to store a flood)
HEAD_BYTES = 200
_DETAIL_CHARS = 500
_TOPIC_CHARS = 256

_metadata = MetaData()
_letters = Table(
    "dead_letters", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("reason", String(64), nullable=False, index=True),
    Column("topic", String(_TOPIC_CHARS), nullable=False),
    Column("detail", Text, nullable=False),
    Column("payload_head", LargeBinary, nullable=False),
)
#: every drop ever recorded, by reason (the rows above are only the newest ``keep``)
_counts = Table(
    "dead_letter_counts", _metadata,
    Column("reason", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dropped message, kept (truncated) for inspection; ``ts`` is when (epoch s)."""

    reason: str
    topic: str
    detail: str
    payload_head: bytes
    ts: float = 0.0


class DeadLetterStore:
    """Dead letters in a SQL table of ``engine`` (created if missing), the newest ``keep``.

    Several processes may write to one database (NATS workers); each insert is one
    transaction, and the per-reason totals are kept apart from the rows, so they stay exact
    when old rows are pruned.
    """

    def __init__(self, engine: Engine, keep: int = 100_000) -> None:
        self.engine = engine
        self.keep = keep
        try:
            _metadata.create_all(engine)
        except (IntegrityError, ProgrammingError):
            # several processes creating the tables at once on PostgreSQL: one of them won
            _metadata.create_all(engine)

    def add_many(self, letters: Sequence[DeadLetter]) -> None:
        """Persist ``letters`` and count them; prune rows beyond the newest ``keep``."""
        if not letters:
            return
        by_reason = Counter(d.reason for d in letters)
        with self.engine.begin() as conn:
            conn.execute(insert(_letters), [
                {"ts": d.ts, "reason": d.reason[:64], "topic": d.topic[:_TOPIC_CHARS],
                 "detail": d.detail[:_DETAIL_CHARS], "payload_head": d.payload_head[:HEAD_BYTES]}
                for d in letters])
            for reason, n in sorted(by_reason.items()):
                done = conn.execute(update(_counts).where(_counts.c.reason == reason[:64])
                                    .values(count=_counts.c.count + n))
                if done.rowcount == 0:
                    conn.execute(insert(_counts).values(reason=reason[:64], count=n))
            newest = conn.execute(select(func.max(_letters.c.id))).scalar_one()
            if newest is not None and newest > self.keep:
                conn.execute(delete(_letters).where(_letters.c.id <= newest - self.keep))

    def letters(self, reason: str | None = None, limit: int = 20,
                topic_prefix: str | None = None) -> list[DeadLetter]:
        """The newest dead letters first, of one reason or all (and only topics that start
        with ``topic_prefix``, e.g. one tenant's ``forewarn/v1/acme/``)."""
        query = select(_letters).order_by(_letters.c.id.desc()).limit(limit)
        if reason is not None:
            query = query.where(_letters.c.reason == reason)
        if topic_prefix is not None:
            query = query.where(_letters.c.topic.startswith(topic_prefix, autoescape=True))
        with self.engine.connect() as conn:
            return [DeadLetter(row.reason, row.topic, row.detail, bytes(row.payload_head),
                               row.ts) for row in conn.execute(query)]

    def counts_under(self, topic_prefix: str) -> dict[str, int]:
        """The kept dead letters (the newest ``keep``) whose topic starts with
        ``topic_prefix``, by reason: a tenant's share, which the all-time totals cannot give."""
        query = (select(_letters.c.reason, func.count().label("n"))
                 .where(_letters.c.topic.startswith(topic_prefix, autoescape=True))
                 .group_by(_letters.c.reason).order_by(_letters.c.reason))
        with self.engine.connect() as conn:
            return {row.reason: int(row.n) for row in conn.execute(query)}

    def counts(self) -> dict[str, int]:
        """Every dead letter ever stored, by reason."""
        with self.engine.connect() as conn:
            return {row.reason: int(row._mapping["count"])
                    for row in conn.execute(select(_counts).order_by(_counts.c.reason))}


class DeadLetters:
    """Counts drops by reason, keeps the most recent ones and persists them all to ``store``.

    Drops are written in batches: at once when nothing was written for ``flush_every_s``,
    else when ``flush_batch`` are waiting or :meth:`flush` is called (the services call it
    after every fetched batch and once a second). A store that fails is logged and retried
    at the next flush; at most ``max_pending`` drops wait, the oldest beyond are only counted
    (``unsaved``), so an unreachable database cannot eat memory.
    """

    def __init__(self, keep: int = 100, store: DeadLetterStore | None = None,
                 clock: Callable[[], float] = time.time, flush_every_s: float = 1.0,
                 flush_batch: int = 512, max_pending: int = 10_000) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)
        self.store = store
        self.clock = clock
        self.flush_every_s = flush_every_s
        self.flush_batch = flush_batch
        self._pending: deque[DeadLetter] = deque(maxlen=max_pending)
        self._last_flush = -float("inf")
        #: drops that never reached the store (it failed while more than max_pending waited)
        self.unsaved = 0

    @property
    def total(self) -> int:
        """All drops, whatever the reason."""
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        """Drops recorded but not yet written to the store."""
        return len(self._pending)

    def record(self, reason: str, topic: str, detail: str, payload: bytes) -> None:
        """Count, log and (with a store) persist one drop."""
        self.counts[reason] += 1
        letter = DeadLetter(reason, topic[:_TOPIC_CHARS], detail[:_DETAIL_CHARS],
                            bytes(payload[:HEAD_BYTES]), self.clock())
        self.recent.append(letter)
        # log the first of each reason loudly, then every 1000th, so a flood does not flood logs
        n = self.counts[reason]
        if n == 1 or n % 1000 == 0:
            _log.warning("dead-lettered %s message #%d on %s: %s", reason, n, topic[:200],
                         detail[:200])
        if self.store is None:
            return
        if len(self._pending) == self._pending.maxlen:
            self.unsaved += 1
        self._pending.append(letter)
        if (len(self._pending) >= self.flush_batch
                or letter.ts - self._last_flush >= self.flush_every_s):
            self.flush()

    def flush(self) -> None:
        """Write the waiting drops to the store (a failing store is logged, not raised)."""
        if self.store is None or not self._pending:
            return
        self._last_flush = self.clock()
        letters = list(self._pending)
        try:
            self.store.add_many(letters)
        except SQLAlchemyError as exc:
            _log.warning("dead letters not saved yet (%d waiting): %s", len(letters), exc)
            return
        for _ in letters:
            self._pending.popleft()

    def __repr__(self) -> str:
        return f"DeadLetters({dict(self.counts)})"
