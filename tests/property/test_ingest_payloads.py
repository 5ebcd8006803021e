"""Whatever arrives on a telemetry topic, ingest never raises: bad payloads are counted and
dead-lettered, good ones stored, and a good batch after bad ones is still stored."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.detect import RobustZ
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore

TOPIC = "forewarn/v1/acme/hp-1/telemetry"

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_anyfloat = st.floats(allow_nan=True, allow_infinity=True, width=64)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), _anyfloat, st.text(max_size=8))
_json = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)


def _good(seq: int, n: int = 3) -> dict[str, Any]:
    return {"v": 1, "device_id": "hp-1", "boot_id": "b1", "seq": seq, "fields": ["a", "b"],
            "t": [1000.0 + i for i in range(n)], "values": [[1.0, 2.0]] * n}


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    """A once-valid batch with one part broken: wrong types, NaN/Inf, missing or unknown keys,
    unknown versions, mismatched shapes, other devices, huge batches, or raw junk."""
    batch: dict[str, Any] = _good(draw(st.integers(0, 2**40)))
    choice = draw(st.integers(0, 9))
    if choice == 0:
        batch[draw(st.sampled_from(sorted(batch)))] = draw(_json)
    elif choice == 1:
        del batch[draw(st.sampled_from(sorted(batch)))]
    elif choice == 2:
        batch["values"][0][0] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif choice == 3:
        batch["v"] = draw(st.integers().filter(lambda v: v != 1))
    elif choice == 4:
        batch["t"] = batch["t"][:-1]
    elif choice == 5:
        batch["device_id"] = draw(st.text(min_size=1, max_size=80))
    elif choice == 6:
        batch["extra"] = draw(_json)
    elif choice == 7:
        n = draw(st.integers(10_001, 12_000))
        batch["t"] = [float(i) for i in range(n)]
        batch["values"] = [[0.0, 0.0]] * n
    elif choice == 8:
        return draw(st.binary(max_size=200))
    else:
        batch["values"][1] = [draw(_json), draw(_json)]
    # json.dumps writes NaN/Infinity literals, which strict JSON parsers must refuse
    return json.dumps(batch).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(_mangled(), min_size=1, max_size=5))
def test_bad_payloads_are_counted_never_raised(payloads: list[bytes]) -> None:
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(RobustZ(), store)
    accepted = 0
    for payload in payloads:
        if pipe.process_payload(TOPIC, payload) is not None:
            accepted += 1
    # every message is accounted for: stored, dropped as a duplicate, or dead-lettered
    assert accepted + pipe.stats.duplicate_batches + pipe.dead_letters.total == len(payloads)
    # and ingest still works afterwards
    good = json.dumps(_good(2**50)).encode()
    scored = pipe.process_payload(TOPIC, good)
    assert scored is not None and scored.n_samples == 3
    assert np.isfinite(scored.scores).all()
    store.close()


@given(values=st.lists(st.lists(st.one_of(st.none(), _finite), min_size=2, max_size=2),
                       min_size=1, max_size=50))
def test_valid_batches_are_stored_once(values: list[list[float | None]]) -> None:
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(RobustZ(), store)
    batch = {"v": 1, "device_id": "hp-1", "boot_id": "b1", "seq": 0, "fields": ["a", "b"],
             "t": [float(i) for i in range(len(values))], "values": values}
    payload = json.dumps(batch).encode()
    assert pipe.process_payload(TOPIC, payload) is not None
    assert pipe.process_payload(TOPIC, payload) is None  # redelivery
    assert pipe.stats.samples_ingested == len(values)
    assert pipe.stats.duplicate_batches == 1
    assert not pipe.dead_letters.counts
    store.close()


def test_spoofed_device_id_is_rejected_and_counted() -> None:
    store = EmbeddedStore(":memory:")
    pipe = CorePipeline(RobustZ(), store)
    spoof = json.dumps({**_good(0), "device_id": "hp-2"}).encode()
    assert pipe.process_payload(TOPIC, spoof) is None
    assert pipe.dead_letters.counts == {"device_mismatch": 1}
    store.close()
