"""The outage scenario of benchmarks/edge_outage.py, shorter: nothing accepted may be lost.

Three agents (a fleet process and a lone ``forewarn edge run``) stream to a real mosquitto with
the shipped ACL; the broker is down for 5 s; the lone agent is killed -9 during the outage and
again while catching up.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.edge.conftest import load_benchmark

pytestmark = pytest.mark.integration


def test_broker_outage_and_kill_9_lose_nothing() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    outage = load_benchmark("edge_outage")
    result = outage.run_outage(devices=3, rate_hz=20.0, warmup_s=1.0, outage_s=5.0, tail_s=1.5)
    assert result.agent_kills == 2
    assert result.published > 3 * 20 * 5  # the outage itself was streamed into the queues
    assert result.dropped_by_cap == 0
    assert result.still_queued == 0
    assert result.lost == 0, result
    assert result.received_unique == result.published
    assert result.max_queue_bytes > 0
