"""Whatever the order of messages, hand-offs, snapshots and crashes, the direct engine's state
on disk drops exactly the batches it handed on and processes every other redelivery.

The model: a batch is *handed on* once :meth:`Checkpoint.commit` ran after it (core then
acknowledges it); a crash forgets everything else (the broker delivers it again). After any
history a batch must be dropped as a duplicate exactly when it was handed on, or accepted by
the running process since its last start.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from core.checkpoint import Checkpoint
from core.detect import RobustZ
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore

TOPIC = "forewarn/v1/acme/hp-1/telemetry"

_ops = st.lists(st.one_of(st.tuples(st.just("receive"), st.integers(0, 3)),
                          st.just(("commit", 0)), st.just(("save", 0)), st.just(("crash", 0))),
                max_size=25)


def _payload(seq: int) -> bytes:
    return json.dumps({"v": 1, "device_id": "hp-1", "boot_id": "b", "seq": seq,
                       "fields": ["a"], "t": [1.7e9 + seq], "values": [[float(seq)]]}).encode()


def _start(directory: Path) -> tuple[CorePipeline, Checkpoint]:
    pipeline = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
    checkpoint = Checkpoint(directory, pipeline)
    checkpoint.restore()
    return pipeline, checkpoint


@settings(max_examples=300)
@given(_ops)
def test_exactly_the_handed_on_batches_survive_a_crash(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pipeline, checkpoint = _start(directory)
        handed_on: set[int] = set()
        accepted: set[int] = set()  # by this process, not yet handed on
        try:
            for op, seq in ops:
                if op == "receive":
                    new = pipeline.process_payload(TOPIC, _payload(seq)) is not None
                    assert new == (seq not in handed_on | accepted), (op, seq)
                    if new:
                        accepted.add(seq)
                elif op == "commit":
                    checkpoint.commit()
                    handed_on |= accepted
                    accepted.clear()
                elif op == "save":
                    asyncio.run(checkpoint.save())
                else:  # kill -9: memory gone, files as they are
                    checkpoint.close()
                    pipeline, checkpoint = _start(directory)
                    accepted.clear()
        finally:
            checkpoint.close()
