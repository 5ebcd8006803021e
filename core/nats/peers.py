"""Peer summaries between worker processes through a JetStream key-value bucket.

Every partition's peer detector publishes its members of each due time bucket
(:class:`core.detect.peer_share.PeerSummary`); a process's :class:`PeerExchange` puts them in
``peer_bucket`` under ``b{bucket}.p{partition}.{part}of{parts}`` (a summary larger than
``PART_BYTES`` goes in several keys: a value is at most nats-server's ``max_payload``, 1 MiB,
and at a million devices a partition's summary is 2.7 MB) and watches the bucket, so every
process's :class:`~core.detect.peer_share.PeerBoard` holds every partition's summaries of the
buckets its partitions are judging, and they judge their own devices over all of them. The
keys live ``peer_keep_s``: a process whose partition judges a bucket its board let go (a
partition taken over replays from its snapshot) reads that bucket's keys again.

A put that fails is retried with full-jitter backoff a few times, then counted
(``publish_failures``): the other partitions judge that bucket without it once their lateness
bound passes, as they would a dead worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import nats.errors
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from core.detect.peer_share import PeerBoard, PeerSummary
from core.nats.config import NatsConfig
from edge.backoff import full_jitter

__all__ = ["PeerExchange", "peer_key"]

_log = logging.getLogger(__name__)
_PUT_ATTEMPTS = 6
#: bytes of a summary per key, at most: below a key-value value's 1 MiB (nats-server's default
#: max_payload), with room for the message's headers
PART_BYTES = 1_000_000
#: buckets behind the newest a summary's parts are waited for (a publisher that died midway)
_PARTS_KEEP = 8


def peer_key(bucket: int, partition: int, part: int = 0, parts: int = 1) -> str:
    """The key of one part of one partition's summary of one bucket.

    >>> peer_key(472_222, 7), peer_key(-3, 0, 1, 2)
    ('b472222.p7.0of1', 'b-3.p0.1of2')
    >>> _parse_key(peer_key(-3, 0, 1, 2)), _parse_key("m.someone")
    ((-3, 0, 1, 2), None)
    """
    return f"b{bucket}.p{partition}.{part}of{parts}"


def _parse_key(key: str) -> tuple[int, int, int, int] | None:
    """(bucket, partition, part, parts) of a key :func:`peer_key` made; None otherwise."""
    try:
        bucket, partition, part = key.split(".")
        index, _, total = part.partition("of")
        return int(bucket[1:]), int(partition[1:]), int(index), int(total)
    except ValueError:
        return None


class PeerExchange:
    """One process's side of the partitions' peer summaries: a board fed by the bucket.

    Usage (the engine does this)::

        exchange = PeerExchange(js, cfg)
        await exchange.start()
        peer.share = exchange.board.share_for(partition)
        ...
        await exchange.close()
    """

    def __init__(self, js: JetStreamContext, cfg: NatsConfig,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.js = js
        self.cfg = cfg
        self.board = PeerBoard(cfg.partitions, cfg.peer_wait_s, clock=clock, send=self._send,
                               fetch=self._fetch)
        self._rng = rng or random.Random()
        self._kv: KeyValue | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._follow: asyncio.Task[None] | None = None
        self._puts: set[asyncio.Task[None]] = set()
        #: summaries read from the bucket (the process's own included)
        self.received = 0
        #: buckets read again for a partition that judges one its board had let go
        self.fetched = 0
        #: parts of summaries sent in several keys: (bucket, partition, parts) → part → it
        self._parts: dict[tuple[int, int, int], dict[int, PeerSummary]] = {}
        #: set whenever a summary arrives or a local partition publishes one: waiting
        #: buckets may be ready (the engine clears it and judges)
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        """Open (or create) the bucket and read what it holds before returning."""
        try:
            self._kv = await self.js.key_value(self.cfg.peer_bucket)
        except (BucketNotFoundError, NotFoundError):
            self._kv = await self.js.create_key_value(
                bucket=self.cfg.peer_bucket, ttl=self.cfg.peer_keep_s, history=1,
                replicas=self.cfg.replicas,
                description="forewarn peer summaries per partition and time bucket")
        self._watcher = await self._kv.watchall()
        while True:  # what the bucket holds, up to the marker after it
            try:
                entry = await self._watcher.updates(timeout=10.0)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                _log.warning("peer summaries: the bucket's contents did not arrive in 10 s")
                break
            if entry is None:
                break
            self._take(entry)
        self._follow = asyncio.create_task(self._follow_bucket(), name="peer-summaries")

    async def close(self) -> None:
        """Finish the puts in flight (briefly) and stop watching."""
        if self._puts:
            await asyncio.wait(list(self._puts), timeout=5.0)
        for task in [*self._puts, *([self._follow] if self._follow else [])]:
            task.cancel()
        await asyncio.gather(*self._puts, *([self._follow] if self._follow else []),
                             return_exceptions=True)
        if self._watcher is not None:
            with contextlib.suppress(nats.errors.Error, AttributeError):
                await self._watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow_bucket(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                self._take(entry)

    def _take(self, entry: KeyValue.Entry) -> None:
        if entry.value is None or entry.operation is not None:
            return  # a delete or purge marker (expiry)
        where = _parse_key(entry.key)
        if where is None:
            return
        bucket, partition, part, parts = where
        try:
            summary = PeerSummary.from_bytes(entry.value)
        except ValueError as exc:
            _log.warning("peer summaries: %s unreadable (%s)", entry.key, exc)
            return
        if parts > 1:
            got = self._parts.setdefault((bucket, partition, parts), {})
            got[part] = summary
            if len(got) < parts:
                return
            del self._parts[(bucket, partition, parts)]
            summary = PeerSummary.merge([got[i] for i in range(parts)])
            for key in [k for k in self._parts if k[0] < bucket - _PARTS_KEEP]:
                del self._parts[key]  # never completed (a publisher that died midway)
        self.received += 1
        self.board.receive(partition, bucket, summary)
        self.arrived.set()

    def _send(self, partition: int, bucket: int, summary: PeerSummary) -> None:
        """The board's transport: put the summary in a task of its own (the detector that
        publishes runs inside the partition worker's coroutine and must not wait)."""
        pieces = summary.split(PART_BYTES)
        for i, piece in enumerate(pieces):
            task = asyncio.get_running_loop().create_task(
                self._put(peer_key(bucket, partition, i, len(pieces)), piece.to_bytes()))
            self._puts.add(task)
            task.add_done_callback(self._puts.discard)
        self.arrived.set()  # the process's other partitions may wait for this one

    def _fetch(self, bucket: int) -> None:
        """The board's way back to a bucket it let go: its keys read again, in a task."""
        task = asyncio.get_running_loop().create_task(self._read_bucket(bucket))
        self._puts.add(task)
        task.add_done_callback(self._puts.discard)

    async def _read_bucket(self, bucket: int) -> None:
        assert self._kv is not None
        self.fetched += 1
        try:
            watcher = await self._kv.watch(f"b{bucket}.>")
            try:
                while True:
                    entry = await watcher.updates(timeout=10.0)  # type: ignore[no-untyped-call]
                    if entry is None:
                        break  # all it holds
                    self._take(entry)
            finally:
                with contextlib.suppress(nats.errors.Error, AttributeError):
                    await watcher.stop()  # type: ignore[no-untyped-call]
        except (TimeoutError, nats.errors.Error) as exc:
            _log.warning("peer summaries: bucket %d not read again (%s)", bucket, exc)
        self.arrived.set()  # judged with what came, once the lateness bound passes

    async def _put(self, key: str, value: bytes) -> None:
        assert self._kv is not None
        for attempt in range(1, _PUT_ATTEMPTS + 1):
            try:
                await self._kv.put(key, value)
                return
            except (TimeoutError, nats.errors.Error) as exc:
                if attempt == _PUT_ATTEMPTS:
                    self.board.stats.publish_failures += 1
                    _log.warning("peer summaries: %s not published (%s)", key, exc)
                    return
                await asyncio.sleep(full_jitter(attempt, 0.05, 2.0, self._rng))
