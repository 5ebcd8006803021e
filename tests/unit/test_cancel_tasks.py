"""Shutdown ends every task, even one whose ``asyncio.wait_for`` swallowed its cancellation.

On Python 3.11 ``asyncio.wait_for`` returns its future's result when the cancellation arrives in
the same loop turn as that result (CPython gh-86296). aiomqtt waits for CONNACK and SUBACK that
way, so ``forewarn core``'s lifecycle listener, cancelled as its subscription was acknowledged,
went on reading and the process never exited after its ingest task died (CI, 2026-12-07). The
race is reproduced here deterministically: the future completes and the task is cancelled in
the same turn.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from edge.tasks import cancel_and_wait
from forewarn.workers import serve_until_stopped


async def _listener(acknowledged: asyncio.Future[None]) -> None:
    """What aiomqtt's subscribe then ``async for message in client.messages`` amounts to."""
    await asyncio.wait_for(acknowledged, 15.0)
    await asyncio.Event().wait()  # no message ever comes


async def _cancelled_as_acknowledged() -> tuple[asyncio.Task[None], asyncio.Future[None]]:
    acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_listener(acknowledged), name="lifecycle")
    await asyncio.sleep(0)  # the listener waits for its acknowledgement
    return task, acknowledged


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="gh-86296 is fixed in Python 3.12")
def test_the_race_is_real_one_cancel_does_not_end_the_task() -> None:
    """The premise: without the helper the task outlives its cancellation."""
    async def scenario() -> bool:
        task, acknowledged = await _cancelled_as_acknowledged()
        acknowledged.set_result(None)
        task.cancel()  # same turn: wait_for returns the result instead of raising
        await asyncio.wait([task], timeout=0.3)
        alive = not task.done()
        task.cancel()  # now it waits on the event: this cancellation lands
        await asyncio.gather(task, return_exceptions=True)
        return alive

    assert asyncio.run(scenario())


def test_cancel_and_wait_ends_a_task_that_swallowed_its_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> bool:
        task, acknowledged = await _cancelled_as_acknowledged()
        acknowledged.set_result(None)
        await asyncio.wait_for(cancel_and_wait([task], grace_s=0.05, retry_s=0.05), 5.0)
        return task.cancelled()

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(scenario())


def test_cancel_and_wait_lets_a_clean_up_finish_within_the_grace() -> None:
    """A task that cleans up after its cancellation (a graceful disconnect) is not cut short."""
    cleaned: list[bool] = []

    async def with_clean_up() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.1)
            cleaned.append(True)

    async def scenario() -> None:
        task = asyncio.create_task(with_clean_up())
        await asyncio.sleep(0)
        await cancel_and_wait([task], grace_s=2.0, retry_s=0.01)

    asyncio.run(scenario())
    assert cleaned == [True]


def test_a_dead_ingest_ends_the_service_though_a_sibling_swallowed_its_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    """``forewarn core``'s loop: the ingest dies, the listener's acknowledgement arrives in
    the turn it is cancelled; the service still returns 1 (and the process exits)."""
    async def scenario() -> int:
        stop = asyncio.Event()
        listener, acknowledged = await _cancelled_as_acknowledged()

        async def ingest() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("Invalid subscription filter.")

        dying = asyncio.create_task(ingest(), name="ingest")
        # the listener's SUBACK lands in the same turn as serve_until_stopped's cancel
        dying.add_done_callback(lambda _: acknowledged.set_result(None))
        return await asyncio.wait_for(serve_until_stopped(stop, [dying, listener]), 30.0)

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario()) == 1
    assert "core's ingest task stopped: ValueError" in caplog.text
