"""Crash test: the dispatcher process is killed with SIGKILL at random points while it delivers
a burst of notices to the signed webhook. After a restart every notice is delivered; the
receiver sees each idempotency key at most twice, and its dedup (by key) makes it once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from rules.db import CaseRow, NoticeRow, connect
from rules.outbox import Outbox
from tests.integration.rules.dispatch_child import SECRET
from tests.servers.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("dispatch_child.py")
BURST = 200
KILLS = 5


def _burst(url: str) -> None:
    engine = connect(url)
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="acme", device_id="hp-1", product="heat_pump",
                            rule="r", severity="warning", status="open", open_key="k",
                            fault_started_at=0, opened_at=0, field="a", peak_score=0.9,
                            summary="", evidence_json="{}"))
        session.add_all(NoticeRow(case_id=1, tenant="acme", device_id="hp-1", audience="team",
                                  channel="webhook", idempotency_key=f"n-{i:04d}",
                                  subject=f"notice {i}", body="b", created_at=0.0)
                        for i in range(BURST))
        session.commit()
    engine.dispose()


def _start(url: str, hook: WebhookReceiver) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(CHILD), url, hook.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_dispatcher_delivers_everything_at_most_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.sqlite'}"
    _burst(url)
    rng = random.Random(20261123)
    # kill points: when the receiver has seen this many distinct keys; random, but at least two
    # dispatch rounds (2 × 16) apart, so a kill does not land on the resends of the one before
    targets = [20 + 34 * i + rng.randint(0, 10) for i in range(KILLS)]
    with WebhookReceiver(secret=SECRET, delay_s=0.004) as hook:
        for target in targets:
            child = _start(url, hook)
            try:
                assert hook.wait_for(target, timeout_s=60), f"stuck before {target} keys"
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
                if child.stderr is not None:
                    child.stderr.close()
            assert child.returncode == -signal.SIGKILL
        child = _start(url, hook)
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()[-2000:]

        assert len(hook.delivered) == BURST  # receiver-side dedup: each notice once
        assert max(hook.received.values()) <= 2
        repeats = sum(1 for n in hook.received.values() if n == 2)
        assert hook.bad_signatures == 0
    engine = connect(url)
    try:
        outbox = Outbox(engine, {}, clock=lambda: 0.0)
        assert outbox.counts() == {"sent": BURST}
        # every kill can leave at most one claimed batch in flight: that is what repeats
        assert repeats <= KILLS * 16
    finally:
        engine.dispose()
