"""Fetching batches from a JetStream pull consumer through one callback inbox.

nats-py's ``PullSubscription.fetch`` awaits every message of a batch with ``next_msg``, which
creates a task (and a uuid4 name, and ``wait_for``'s task) per message: at 100 samples per
message that cost a worker about as much CPU as decoding the message
(``benchmarks/ingest_throughput.py``). :class:`BatchFetcher` speaks the same pull protocol
(a ``CONSUMER.MSG.NEXT`` request with ``batch``, ``no_wait`` or ``expires``; the server answers
with messages, then a status message when it ends the request short) but collects the messages
with a callback subscription, so a batch costs one request and one wake-up.

It fetches like nats-py does: first a ``no_wait`` request for what the consumer has now; when
that is nothing, a lingering request that ends with a full batch or after ``timeout``.
Messages are the ordinary :class:`nats.aio.msg.Msg` (``ack_sync``, ``metadata``…). Usage::

    fetcher = BatchFetcher(nc, stream="FOREWARN_TELEMETRY", consumer="fw-part-07")
    await fetcher.start()
    msgs = await fetcher.fetch(64, timeout=1.0)   # [] when nothing arrived within the timeout
    await fetcher.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["BatchFetcher"]

_log = logging.getLogger(__name__)

#: status codes that end a pull request short: no messages, request expired, conflict
_ENDS = frozenset({"404", "408", "409"})
_HEARTBEAT = "100"


class BatchFetcher:
    """One pull consumer's batches, collected by a callback on a private inbox."""

    def __init__(self, nc: Client, stream: str, consumer: str,
                 api_prefix: str = "$JS.API") -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: deque[Msg] = deque()
        self._ended = False
        self._wake = asyncio.Event()
        #: requests the server ended short (no messages now, expired, conflict)
        self.short_ends = 0

    async def start(self) -> None:
        """Subscribe the inbox the consumer delivers to."""
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def close(self) -> None:
        """Unsubscribe (messages still unacknowledged are redelivered after ``ack_wait``)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._buffer.append(msg)
        elif status == _HEARTBEAT:
            return
        else:
            if status not in _ENDS:
                _log.warning("pull request on %s ended with status %s %s", self._next_subject,
                             status, msg.headers.get("Description", "") if msg.headers else "")
            self._ended = True
            self.short_ends += 1
        self._wake.set()

    async def _request(self, batch: int, timeout: float | None) -> None:
        body: dict[str, object] = {"batch": batch}
        if timeout is None:
            body["no_wait"] = True
        else:
            body["expires"] = int(timeout * 1e9)
        self._ended = False
        await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=self._inbox)

    async def _wait(self, batch: int, deadline: float) -> None:
        """Until ``batch`` messages are buffered, the request ended, or ``deadline``."""
        loop = asyncio.get_running_loop()
        while len(self._buffer) < batch and not self._ended:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to ``batch`` messages in stream order; ``[]`` when none came within ``timeout``."""
        loop = asyncio.get_running_loop()
        if len(self._buffer) < batch:
            # what the consumer holds now, without waiting for more
            await self._request(batch - len(self._buffer), None)
            await self._wait(batch, loop.time() + timeout)
            if not self._buffer:
                # nothing now: one lingering request, ended by a full batch or its expiry
                # (its own status, or our deadline a little later if that status is lost)
                await self._request(batch, timeout)
                await self._wait(batch, loop.time() + timeout + 0.5)
        take = min(batch, len(self._buffer))
        return [self._buffer.popleft() for _ in range(take)]
