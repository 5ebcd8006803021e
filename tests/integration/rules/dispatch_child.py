"""The dispatcher process of the crash test: delivers every pending notice to a webhook.

Run as ``python dispatch_child.py DB_URL HOOK_URL [LEASE_S]``; exits 0 when nothing is pending.
The crash test kills it with SIGKILL at random points and starts it again; the slow-channel test
gives it a lease shorter than one delivery.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

SECRET = b"crash-test"


async def _deliver_all(db_url: str, hook_url: str, lease_s: float = 1.0) -> None:
    from rules.db import connect
    from rules.notifiers.webhook import WebhookNotifier
    from rules.outbox import Outbox

    engine = connect(db_url)
    try:
        async with WebhookNotifier(hook_url, SECRET) as hook:
            outbox = Outbox(engine, {"webhook": hook}, clock=time.time, base_delay_s=0.05,
                            lease_s=lease_s, concurrency=8)
            while outbox.pending():
                if await outbox.dispatch_once(limit=16) == 0:
                    await asyncio.sleep(0.05)  # leased notices of a killed run come back soon
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    asyncio.run(_deliver_all(*sys.argv[1:3], *map(float, sys.argv[3:4])))
