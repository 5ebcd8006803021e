"""Cancel asyncio tasks and wait until they have really ended.

``task.cancel(); await task`` can wait for ever on Python 3.11. ``asyncio.wait_for`` there
returns its inner future's result instead of raising when the cancellation arrives in the same
loop turn as that result (CPython gh-86296, fixed in 3.12), so the task goes on as if it had
never been cancelled. aiomqtt (2.5) waits for its CONNACK and SUBACK that way: a listener
cancelled just as its subscription was acknowledged went on reading messages, and
``forewarn core`` whose ingest had died never exited (a CI run, 2026-12-07).

:func:`cancel_and_wait` cancels, gives the tasks ``grace_s`` to end (their own clean-up, a
graceful MQTT disconnect, is not interrupted), then cancels whatever still runs again, every
``retry_s``, until everything has ended. The shutdowns of tasks that wait on aiomqtt or nats-py
(core's service loop, the NATS engine and bridge, the edge uplink, the demo) use it.

>>> import asyncio
>>> async def swallowed_once() -> str:
...     try:
...         await asyncio.sleep(3600)
...     except asyncio.CancelledError:
...         pass  # as wait_for does on 3.11 when its future completes in the same turn
...     await asyncio.sleep(3600)
...     return "never"
>>> async def main() -> bool:
...     task = asyncio.create_task(swallowed_once())
...     await asyncio.sleep(0)
...     await cancel_and_wait([task], grace_s=0.01, retry_s=0.01)
...     return task.cancelled()
>>> asyncio.run(main())
True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

_log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], grace_s: float = 5.0,
                          retry_s: float = 1.0) -> None:
    """Cancel ``tasks`` and return once every one of them is done.

    A task still running ``grace_s`` after the first cancellation is cancelled again every
    ``retry_s`` (and logged): it swallowed its cancellation. The tasks' exceptions are marked
    retrieved; a caller that wants them reads them from the tasks afterwards.
    """
    given = list(tasks)
    pending = {task for task in given if not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=grace_s)
    while pending:
        for task in pending:
            _log.warning("task %s did not end %.1f s after it was cancelled; cancelling it "
                         "again", _name(task), grace_s)
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    for task in given:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
