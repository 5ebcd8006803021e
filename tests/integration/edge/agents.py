"""Edge agents for the device lifecycle tests: one in this process (an :class:`Uplink` whose
agent the test drives), one as a separate ``forewarn edge run`` process that is killed so the
broker publishes its last will, and polling with a deadline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from edge.agent import EdgeAgent
from edge.backoff import Backoff
from edge.batcher import Batcher
from edge.queue import DiskQueue
from edge.uplink import BrokerConfig, Uplink

__all__ = ["device_uplink", "kill_agent", "until"]

ROOT = Path(__file__).resolve().parents[3]


def device_uplink(port: int, tenant: str, device: str, password: str | None,
                  path: Path) -> Uplink:
    """A heat pump's agent (one field, ``a``) with its disk queue at ``path``, to the broker
    on ``port`` as user ``device``."""
    agent = EdgeAgent(tenant, Batcher(device, uuid.uuid4().hex[:8], "heat_pump", ("a",)),
                      queue=DiskQueue(path))
    return Uplink(agent, BrokerConfig("127.0.0.1", port, username=device, password=password),
                  backoff=Backoff(0.05, 0.5), client_id=f"{device}-{uuid.uuid4().hex[:4]}")


async def until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while not check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def kill_agent(port: int, tenant: str, device: str, password: str | None,
                     tmp_path: Path, state: Callable[[str], tuple[str | None, str | None]],
                     timeout_s: float = 60.0) -> float:
    """Run ``forewarn edge run`` as ``device`` until ``state`` says it is online, SIGKILL it,
    and wait until ``state`` shows its last will; returns when it was killed."""
    edge = tmp_path / f"{device}.toml"
    edge.write_text(f'tenant = "{tenant}"\ndevice_id = "{device}"\n[broker]\nport = {port}\n'
                    f'username = "{device}"\n[queue]\npath = "{tmp_path / device}.sqlite"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if password is not None:
        env["FOREWARN_EDGE_BROKER__PASSWORD"] = password
    agent = subprocess.Popen(
        [sys.executable, "-m", "forewarn.commands.edge", "run", "--config", str(edge)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: state(device) == ("online", None), f"{device} online", timeout_s)
    finally:
        agent.kill()
        agent.wait()
    killed = time.time()
    await until(lambda: state(device) == ("offline", "connection_lost"), f"{device} will",
                timeout_s)
    return killed
