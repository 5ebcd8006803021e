"""Coalesced ingest (``CorePipeline.process_group``, what ``forewarn core`` runs) stores, scores
and raises exactly what message-by-message ingest (``process_payload``, the reference) does.

The messages are a mapped fleet's: one JSON reading per message, readings going back in time,
redelivered, with other fields, nulls, arrays of readings, bad payloads, native batches between
them, devices of another tenant and readings from the future; cut into groups at random.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.detect import DetectorConfig, RobustZ, make_detector
from core.events import ScoredBatch
from core.mapping import MappedDecoder, MappingConfig
from core.nats import HandOff
from core.pipeline import BatchDetector, CorePipeline, PipelineState

NOW = 1_700_100_000.0
MAPPINGS = [
    MappingConfig(name="acme-json", topic="acme/+site/+device/state", tenant="acme",
                  product="heat_pump", time_key="ts"),
    MappingConfig(name="tenant-ms", topic="fleet/+tenant/+device/up", product="chiller",
                  time_key="time", rename={"p": "pressure"}),
]
DETECTORS: dict[str, Callable[[], BatchDetector]] = {
    "robust_z": RobustZ,
    "fleet": lambda: make_detector(DetectorConfig()),  # what forewarn core runs
}


@st.composite
def _message(draw: st.DrawFn, clock: list[float], faulty: int) -> tuple[str, bytes]:
    """One message of the mixed fleet; ``clock`` is the devices' shared time, moved on; device
    ``faulty`` reads high on ``f1`` (for the detectors to raise events)."""
    kind = draw(st.sampled_from(["reading"] * 12 + ["other", "array", "bad", "native"]))
    number = draw(st.integers(0, 3))
    device = f"hp-{number}"
    step = draw(st.sampled_from([60.0] * 6 + [0.0, -60.0, -600.0, 1e6]))  # late, same, future
    clock[0] = max(clock[0] + 60.0, clock[0] + step) if step < 1e6 else clock[0]
    when = clock[0] + (step if step < 0 or step >= 1e6 else 0.0)
    values = {f"f{j}": draw(st.one_of(st.floats(40, 60), st.just(500.0), st.none(),
                                      st.integers(-5, 5))) for j in range(3)}
    if number == faulty:
        values["f1"] = 90.0 + clock[0] % 7
    if kind == "native":
        batch = {"v": 1, "device_id": device, "boot_id": "b", "seq": int(when),
                 "fields": ["f0", "f1", "f2"], "t": [when, when + 1.0],
                 "values": [[1.0, 2.0, 3.0], [1.5, None, 3.5]]}
        return f"forewarn/v1/acme/{device}/telemetry", json.dumps(batch).encode()
    if draw(st.sampled_from([number % 2] * 9 + [1 - number % 2])):  # mostly one per device
        body: dict[str, Any] = {"time": int(when * 1000), "p": values.pop("f0"), **values,
                                "status": "ok"}
        topic = f"fleet/{draw(st.sampled_from(['acme', 'beta']))}/{device}/up"
    else:
        body = {"ts": when, **values, "status": "ok"}
        topic = f"acme/s1/{device}/state"
    if kind == "other":  # another set of fields for a while
        body["extra"] = 1.0
    elif kind == "bad":
        body[draw(st.sampled_from(sorted(body)))] = draw(st.sampled_from(["x", True, [1]]))
    payload = json.dumps([body, body] if kind == "array" else body).encode()
    if kind == "bad" and draw(st.booleans()):
        payload = payload[: len(payload) // 2]
    return topic, payload


@st.composite
def _fleet(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], list[int]]:
    clock = [NOW - 86_400.0]
    faulty = draw(st.integers(0, 4))
    messages = [draw(_message(clock, faulty)) for _ in range(draw(st.integers(1, 200)))]
    for again in draw(st.lists(st.integers(0, len(messages) - 1), max_size=6)):  # redelivered
        messages.insert(draw(st.integers(again, len(messages))), messages[again])
    cuts = sorted(draw(st.sets(st.integers(1, len(messages)), max_size=8)) | {len(messages)})
    return messages, cuts


def _pipeline(detector: str, store: HandOff) -> CorePipeline:
    return CorePipeline(DETECTORS[detector](), store, event_threshold=0.9, dedup_window=16,
                        future_horizon_s=3600.0, clock=lambda: NOW,
                        device_tenant=lambda device: "beta" if device == "hp-3" else None,
                        decoder=MappedDecoder(MAPPINGS, clock=lambda: NOW))


_WARM: dict[str, PipelineState] = {}


def _warm(detector: str) -> PipelineState:
    """A pipeline's state after two days of every device's readings (past the warm-up)."""
    if detector not in _WARM:
        pipeline = _pipeline(detector, HandOff())
        rng = np.random.default_rng(5)
        start = NOW - 3 * 86_400.0
        for i in range(2 * 1440 // 5):
            for device in range(4):
                values = {f"f{j}": round(float(v), 2) for j, v in enumerate(rng.normal(50, 3, 3))}
                for topic, body in ((f"acme/s1/hp-{device}/state", {"ts": start + 300 * i}),
                                    (f"fleet/acme/hp-{device}/up",
                                     {"time": int((start + 300 * i) * 1000),
                                      "p": values.pop("f0")})):
                    pipeline.process_payload(topic, json.dumps({**body, **values}).encode())
        _WARM[detector] = pipeline.state()
    return _WARM[detector]


def _run(detector: str, messages: list[tuple[str, bytes]], cuts: list[int] | None
         ) -> tuple[CorePipeline, list[ScoredBatch]]:
    store = HandOff()
    pipeline = _pipeline(detector, store)
    pipeline.load_state(_warm(detector))
    if cuts is None:
        for topic, payload in messages:
            pipeline.process_payload(topic, payload)
        return pipeline, store.take()
    stored: list[ScoredBatch] = []
    start = 0
    for cut in cuts:
        handed = pipeline.process_group(messages[start:cut])
        stored.extend(store.take())
        assert [scored for scored, _, _ in handed] == stored[len(stored) - len(handed):]
        start = cut
    return pipeline, stored


def _per_series(batches: list[ScoredBatch]) -> dict[tuple[str, str, str], Any]:
    """Every stored sample, score and event, per series in arrival order."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    for batch in batches:
        for j, name in enumerate(batch.fields):
            series = out.setdefault((batch.tenant, batch.device_id, name), [[], [], []])
            series[0].extend(zip(batch.t.tolist(), batch.values[:, j].tolist(),
                                 batch.scores[:, j].tolist(), strict=True))
        for raised in batch.events:
            out.setdefault((batch.tenant, batch.device_id, raised.field), [[], [], []])[1].append(
                raised)
        out.setdefault((batch.tenant, batch.device_id, ""), [[], [], []])[2].append(batch.product)
    return {key: (np.array(rows, dtype=np.float64), events, sorted(set(products)))
            for key, (rows, events, products) in out.items()}


# one drawn fleet is checked under every detector: drawing the messages is most of the time
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=_fleet())
def test_coalesced_ingest_is_message_by_message(
        fleet: tuple[list[tuple[str, bytes]], list[int]]) -> None:
    messages, cuts = fleet
    for detector in sorted(DETECTORS):
        _check_coalesced(detector, messages, cuts)


def _check_coalesced(detector: str, messages: list[tuple[str, bytes]], cuts: list[int]) -> None:
    reference, one_by_one = _run(detector, messages, None)
    fast, grouped = _run(detector, messages, cuts)
    assert len(grouped) <= len(one_by_one), detector
    event(f"{detector} coalesced: {len(grouped) < len(one_by_one)}")
    event(f"{detector} detector events: {any(batch.events for batch in grouped)}")
    event(f"dead letters: {bool(reference.dead_letters.counts)}")
    event(f"duplicates: {reference.stats.duplicate_batches > 0}")
    want, got = _per_series(one_by_one), _per_series(grouped)
    assert want.keys() == got.keys(), detector
    for key, (rows, events, products) in want.items():
        where = f"{detector} {key}"
        np.testing.assert_array_equal(got[key][0], rows, err_msg=where)  # NaN == NaN here
        assert [repr(e) for e in got[key][1]] == [repr(e) for e in events], where  # NaN values
        assert got[key][2] == products, where
    # the same counts, but fewer, larger batches
    assert replace(fast.stats, batches_ingested=0) == replace(reference.stats,
                                                              batches_ingested=0), detector
    assert fast.dead_letters.counts == reference.dead_letters.counts, detector
    assert fast.dedup.state() == reference.dedup.state(), detector


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(message=_message([NOW], 1),
       extra=st.dictionaries(st.sampled_from(["ts", "time", "f0", "p", "a b", "x.y", "status"]),
                             st.one_of(_scalar, st.lists(_scalar, max_size=2),
                                       st.dictionaries(st.text(max_size=3), _scalar,
                                                       max_size=2)), max_size=4))
def test_the_quick_reading_is_the_decoded_batch(message: tuple[str, bytes],
                                                extra: dict[str, Any]) -> None:
    """:meth:`MappedDecoder.reading` gives what the decoder does, or None (never raises)."""
    decoder = MappedDecoder(MAPPINGS, clock=lambda: NOW)
    topic, payload = message
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict):
        payload = json.dumps({**body, **extra}).encode()
    found = decoder.reading(topic, payload)
    event(f"taken the quick way: {found is not None}")
    if found is None:
        return
    batch = decoder(topic, payload)
    tenant, device, boot, seq, product, fields, t, values = found
    assert (tenant, device, boot, seq, product, fields) == (
        batch.tenant, batch.device_id, batch.boot_id, batch.seq, batch.product, batch.fields)
    assert batch.t.tolist() == [t]
    np.testing.assert_array_equal(np.array([values], dtype=np.float64), batch.values)
