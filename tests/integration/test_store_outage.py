"""No point is lost when the store goes away during a stream and comes back.

VictoriaMetrics is stopped for ``FOREWARN_OUTAGE_S`` seconds (5 by default to keep the suite
fast; ``benchmarks/store_write.py`` runs the 20 s outage) while batches keep coming, then started
again on the same port and data directory. Everything written before, during and after must be
there afterwards: counted, and spot-checked value by value.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.events import ScoredBatch
from core.store.buffered import BufferedStore
from core.store.config import InfluxConfig
from core.store.influx import InfluxStore
from tests.servers.victoria import VictoriaMetrics

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("FOREWARN_OUTAGE_S", "5"))
FIELDS = ("current", "discharge_temp", "flow", "suction_pressure")
PER_BATCH = 10
T0 = 1_699_999_980.0


def numbered_batch(tenant: str, seq: int) -> ScoredBatch:
    """Batch ``seq``: sample i of it has values seq·1000 + i·10 + field (exact in any store)."""
    index = seq * PER_BATCH + np.arange(PER_BATCH)
    t = (T0 + index * 0.5).astype(np.float64)
    values = (seq * 1000 + np.arange(PER_BATCH)[:, None] * 10 + np.arange(len(FIELDS))).astype(
        np.float64
    )
    return ScoredBatch(tenant, "hp-1", "heat_pump", FIELDS, t, values, np.zeros_like(values))


def test_every_point_survives_an_outage(
    own_victoria: VictoriaMetrics, tmp_path: Path, tenant: str
) -> None:
    config = InfluxConfig(url=own_victoria.url, retries=0, timeout_s=2.0, write_explanations=False)
    store = BufferedStore(
        InfluxStore(config), tmp_path / "spool", base_delay_s=0.1, max_delay_s=1.0
    )
    sent: list[ScoredBatch] = []

    def stream(seconds: float) -> None:
        # a device stream: a batch every 20 ms (the pause paces the stream, it waits for nothing)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            batch = numbered_batch(tenant, len(sent))
            store.write(batch)
            sent.append(batch)
            time.sleep(0.02)

    try:
        stream(1.0)
        own_victoria.stop()
        stream(OUTAGE_S)
        during = store.stats()
        own_victoria.start()
        stream(1.0)
        assert store.flush(timeout_s=30.0)
        after = store.stats()
    finally:
        store.close()

    assert during["store_up"] == 0 and int(during["pending_batches"]) > 0
    assert after["dropped_batches"] == 0 and after["pending_batches"] == 0
    assert after["replayed_batches"] == after["spooled_batches"] >= during["pending_batches"]
    assert after["written_batches"] + after["replayed_batches"] == len(sent)

    n_samples = len(sent) * PER_BATCH
    exported = {
        item["metric"]["__name__"]: item
        for item in own_victoria.export(f'{{tenant="{tenant}",__name__=~"telemetry_.+"}}')
    }
    assert sorted(exported) == sorted(f"telemetry_{name}" for name in FIELDS)
    for j, name in enumerate(FIELDS):
        series = exported[f"telemetry_{name}"]
        assert len(series["timestamps"]) == n_samples, name
        stored = dict(zip(series["timestamps"], series["values"], strict=True))
        rng = np.random.default_rng(j)
        for seq in [0, len(sent) // 2, len(sent) - 1, *rng.integers(0, len(sent), 20).tolist()]:
            batch = sent[seq]
            for i in range(PER_BATCH):
                assert stored[round(batch.t[i] * 1000)] == batch.values[i, j]
