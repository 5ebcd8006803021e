"""Connecting to NATS the one way core does: reconnect for ever, and say a failure in one line.

nats-py's own error callback logs every failed try with its traceback (two a second while a
server is down); :func:`connect` logs one line naming the server and the reason instead, again
only when the reason changes or ``every_s`` has passed.

>>> import asyncio, logging
>>> said = OneLineErrors("nats://127.0.0.1:4222", logging.getLogger("demo"), clock=lambda: 0.0)
>>> asyncio.run(said(ConnectionRefusedError(111, "Connect call failed")))
>>> said.last
'cannot reach NATS at nats://127.0.0.1:4222 ([Errno 111] Connect call failed); retrying'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.client import Client

__all__ = ["OneLineErrors", "connect"]

_log = logging.getLogger(__name__)


class OneLineErrors:
    """nats-py's ``error_cb``: one warning line per reason (again after ``every_s``)."""

    def __init__(self, url: str, log: logging.Logger = _log,
                 clock: Callable[[], float] = time.monotonic, every_s: float = 30.0) -> None:
        self.url = url
        self.log = log
        self.clock = clock
        self.every_s = every_s
        #: the last line said
        self.last = ""
        self._said_at = float("-inf")

    async def __call__(self, exc: Exception) -> None:
        line = f"cannot reach NATS at {self.url} ({exc or type(exc).__name__}); retrying"
        now = self.clock()
        if line != self.last or now - self._said_at >= self.every_s:
            self.log.warning("%s", line)
            self.last, self._said_at = line, now


async def connect(url: str, name: str, **options: Any) -> Client:
    """A client of the NATS server at ``url`` that reconnects for ever (``options``: nats-py's,
    e.g. ``reconnect_time_wait``)."""
    client: Client = await nats.connect(url, name=name, max_reconnect_attempts=-1,
                                        # nats-py wants a coroutine function, not an object
                                        error_cb=OneLineErrors(url).__call__, **options)
    return client
