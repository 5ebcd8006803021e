"""``forewarn serve --demo-dir``: the console over a run's files, "now" at the end of its data,
served by uvicorn until cancelled, closing what it opened."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from forewarn.console.server import console_context, make_server, serve_console
from forewarn.ports import free_port
from forewarn.settings import Settings
from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration


def test_serve_a_demo_run(console: ConsoleUnderTest) -> None:
    settings = Settings(tenant="acme")
    ctx = console_context(settings, demo_dir=console.out)
    newest = max(last for _, last in ctx.store_devices("acme").values() if last is not None)
    assert ctx.clock() == newest
    token = ctx.tokens.create("acme", "viewer", "server test").token
    port = free_port()

    server = make_server(ctx, "127.0.0.1", port)

    async def run() -> int:
        task = asyncio.create_task(serve_console(ctx, "127.0.0.1", port, server))
        deadline = time.monotonic() + 20.0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                try:
                    answer = await client.get("/api/v1/fleet",
                                              headers={"Authorization": f"Bearer {token}"})
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the console did not come up"
                    await asyncio.sleep(0.05)
        server.should_exit = True  # what Ctrl-C does
        await task
        return int(answer.json()["devices"])

    assert asyncio.run(run()) >= 4  # the four simulated heat pumps (and other tests' cases)
