"""Timestamps over the whole float range: ingest never overflows (issue 18.5) and a timestamp
beyond the future horizon is dead-lettered (issue 16.6).

The pipeline runs the service's detector profile (the fleet Ensemble) with the product limits,
the configuration under which ``t = 1e300`` raised ``OverflowError`` out of the pipeline; every
timestamp is either stored and read back at the same instant, or dead-lettered.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.decode import decode_fast
from core.detect import DetectorConfig, make_detector
from core.limits import load_limits
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from edge.schema import MAX_TIMESTAMP_S

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "forewarn/v1/acme/hp-1/telemetry"
NOW = 1_765_000_000.0
HORIZON = 86_400.0

_any_time = st.one_of(
    st.floats(),  # the whole range: NaN, ±inf, subnormals, ±1.8e308
    st.floats(0.0, 1e20),
    st.sampled_from([0.0, -0.0, NOW, NOW + HORIZON, NOW + HORIZON + 1, MAX_TIMESTAMP_S,
                     math.nextafter(MAX_TIMESTAMP_S, math.inf), 1e15, 9.2e15, 1e300]),
)


def _payload(seq: int, t: float) -> bytes:
    # json.dumps writes nan/inf as NaN/Infinity, which JSON (and so the decoder) refuses
    return json.dumps({"v": 1, "device_id": "hp-1", "boot_id": "b", "seq": seq,
                       "product": "heat_pump", "fields": ["compressor_current"],
                       "t": [t], "values": [[7.0]]}).encode()


@pytest.fixture(scope="module")
def pipeline() -> CorePipeline:
    return CorePipeline(make_detector(DetectorConfig()), EmbeddedStore(":memory:"),
                        limits=load_limits(ROOT / "config/limits.yaml"),
                        future_horizon_s=HORIZON, clock=lambda: NOW)


_seq = iter(range(10**9))


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=_any_time)
@example(t=0.0015).via("a full run: kept as 0.002, just outside a half-millisecond window")
@example(t=0.0625).via("a full run: kept as 0.062, half a millisecond and a rounding off")
def test_every_timestamp_is_stored_where_it_says_or_dead_lettered(
        pipeline: CorePipeline, t: float) -> None:
    before = dict(pipeline.dead_letters.counts)
    scored = pipeline.process_payload(TOPIC, _payload(next(_seq), t))
    after = dict(pipeline.dead_letters.counts)
    if 0.0 <= t <= NOW + HORIZON:
        assert scored is not None, after
        # stored to the millisecond (half to even: 0.0015 is kept as 0.002), so read a little
        # wider than half a millisecond and look for it there
        frame = pipeline.store.read("acme", "hp-1", t - 0.001, t + 0.001)  # type: ignore[attr-defined]
        assert frame.t.size >= 1 and float(np.min(np.abs(frame.t - t))) <= 0.0005 + 1e-9
    else:
        assert scored is None
        reason = "future_timestamp" if NOW + HORIZON < t <= MAX_TIMESTAMP_S else "invalid"
        assert after.get(reason, 0) == before.get(reason, 0) + 1, (reason, after)
    assert "crash" not in after


@given(t=_any_time)
def test_fast_path_refuses_every_timestamp_past_the_schema_bound(t: float) -> None:
    decoded = decode_fast("acme", _payload(0, t))
    if decoded is not None:
        assert 0.0 <= decoded.t[0] <= MAX_TIMESTAMP_S and decoded.t[0] == t


def test_without_a_horizon_the_schema_bound_still_holds() -> None:
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(make_detector(DetectorConfig()), store)
    assert pipe.process_payload(TOPIC, _payload(0, MAX_TIMESTAMP_S)) is not None
    assert pipe.process_payload(TOPIC, _payload(1, 1e300)) is None
    assert pipe.dead_letters.counts == {"invalid": 1}
    frame = store.read("acme", "hp-1", MAX_TIMESTAMP_S - 1, MAX_TIMESTAMP_S + 1)
    assert frame.t.tolist() == [MAX_TIMESTAMP_S]
