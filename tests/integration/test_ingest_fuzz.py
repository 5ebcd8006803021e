"""Fuzzing the real ingest loop (issue 18, Tests): over 10,000 hostile payloads through a real
Mosquitto, core's ingest service (``CoreService`` with the service's detector, persisted dead
letters, tenant binding and future horizon) and a real store; afterwards a valid message is
still ingested, and every bad message is a dead letter, counted and persisted by reason.

hypothesis writes the payloads (nesting, sizes, number edge cases, wrong types, invalid UTF-8,
zlib tricks, topic tricks) up front; they are published in bulk and the test waits on the
service's counters, not on time. What each message must become is decided by a reference
pipeline in this process (the same code, no broker in between): the service must agree with it
reason by reason, ingest the same number of batches, and still be running.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from core.config import MqttConfig
from core.dead_letter import DeadLetters, DeadLetterStore
from core.detect import DetectorConfig, RobustZ, make_detector
from core.events import ScoredBatch
from core.pipeline import BatchDetector, CorePipeline
from core.service import CoreService
from core.store.embedded import EmbeddedStore
from edge.schema import MAX_SAMPLES_PER_BATCH, telemetry_topic
from tests.servers.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.integration

#: payloads hypothesis writes; a few hand-made ones (too large, zip bombs) come on top
N_PAYLOADS = 10_000
_PER_EXAMPLE = 50
NOW = float(int(time.time()))  # whole seconds: the store keeps milliseconds
HORIZON = 86_400.0

TENANT = f"f{uuid.uuid4().hex[:8]}"
OTHER = f"o{uuid.uuid4().hex[:8]}"
DEVICES = ("hp-1", "hp-2", "bat-3")
#: hp-1 belongs to TENANT: under OTHER it is a tenant_mismatch
BOUND = {"hp-1": TENANT}

_finite = st.floats(allow_nan=False, allow_infinity=False)
_any_float = st.floats()
_odd_number = st.sampled_from(
    ["0", "-0", "-0.0", "1e400", "-1e400", "1e-400", "9007199254740993", "1E22", "1e23",
     "123456789012345678901234567890", "0.1", "01", "1.", ".5", "+1", "1e", "NaN", "Infinity",
     "-Infinity", "true", "false", "null", '"1.5"', "[]", "{}", "[1]"])
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), _any_float, st.text(max_size=8))
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)
#: sequence numbers of one width, so a payload's length (which some draws depend on) is fixed
_seq = iter(range(10**12, 10**13))


def _good(device: str, n: int = 2, t0: float = NOW - 3600.0) -> dict[str, Any]:
    return {"v": 1, "device_id": device, "boot_id": "b", "seq": next(_seq),
            "product": "heat_pump", "fields": ["compressor_current", "discharge_temp"],
            "t": [t0 + 60.0 * i for i in range(n)], "values": [[7.0, 61.0]] * n}


@st.composite
def _valid(draw: st.DrawFn) -> tuple[str, bytes]:
    device = draw(st.sampled_from(DEVICES))
    batch = _good(device, draw(st.integers(1, 5)))
    batch["values"] = [[draw(st.one_of(st.none(), _finite)) for _ in range(2)]
                       for _ in batch["t"]]
    return telemetry_topic(TENANT, device), json.dumps(batch).encode()


@st.composite
def _mangled(draw: st.DrawFn) -> tuple[str, bytes]:
    """A good batch with one part broken: wrong types, odd numbers, shapes, keys, times."""
    device = draw(st.sampled_from(DEVICES))
    batch = _good(device)
    choice = draw(st.integers(0, 9))
    if choice == 0:  # wrong type anywhere
        batch[draw(st.sampled_from(sorted(batch)))] = draw(_json)
    elif choice == 1:
        del batch[draw(st.sampled_from(sorted(batch)))]
    elif choice == 2:  # a number spelled oddly (raw JSON text)
        where = draw(st.sampled_from(["t", "values", "seq", "v"]))
        odd = draw(_odd_number)
        text = json.dumps({**batch, where: "@@"})
        raw = {"t": f"[{odd}, {NOW}]", "values": f"[[{odd}, 1], [2, 3]]",
               "seq": odd, "v": odd}[where]
        return telemetry_topic(TENANT, device), text.replace('"@@"', raw).encode()
    elif choice == 3:  # any float as a time: NaN, inf, negative, 1e300, the far future
        batch["t"][0] = draw(st.one_of(_any_float, st.sampled_from(
            [NOW + 10 * HORIZON, 1e15, 1e300, -1.0, 0.0])))
    elif choice == 4:  # any float as a reading
        batch["values"][0][0] = draw(_any_float)
    elif choice == 5:  # shapes
        width = draw(st.integers(0, 3))
        batch["values"] = [*batch["values"][: draw(st.integers(0, 1))], [1.0] * width]
    elif choice == 6:
        batch[draw(st.text(min_size=1, max_size=8))] = draw(_json)
    elif choice == 7:  # names
        key = draw(st.sampled_from(["device_id", "boot_id", "product", "fields"]))
        name = draw(st.text(max_size=70))
        batch[key] = [name] if key == "fields" else name
    elif choice == 8:  # too many samples (kept short: 0 for a time, one row of values)
        batch["t"] = [0] * (MAX_SAMPLES_PER_BATCH + draw(st.integers(1, 10)))
    else:  # seq edge cases
        batch["seq"] = draw(st.sampled_from([-1, 2**63, 2**63 - 1, 2**64, True, 1.5]))
    # json.dumps writes NaN/Infinity, which JSON (and so the decoder) refuses
    return telemetry_topic(TENANT, device), json.dumps(batch).encode()


@st.composite
def _nested(draw: st.DrawFn) -> tuple[str, bytes]:
    # deeper than the 8 levels allowed, up to what made msgspec and pydantic recurse out
    # (~1000); one hand-made payload nests 4 MiB deep
    depth = draw(st.one_of(st.integers(1, 12), st.integers(13, 3000)))
    opener = draw(st.sampled_from(["[", '{"a":', '{"values":[', '["\\"[",']))
    closer = {"[": "]", '{"a":': "}", '{"values":[': "]}", '["\\"[",': "]"}[opener]
    inner = opener * depth + "1" + closer * draw(st.sampled_from([0, depth]))
    where = draw(st.sampled_from(["values", "t", "whole"]))
    if where == "whole":
        payload = inner
    else:
        payload = json.dumps({**_good("hp-2"), where: "@@"}).replace('"@@"', inner)
    return telemetry_topic(TENANT, "hp-2"), payload.encode()


@st.composite
def _bytes(draw: st.DrawFn) -> tuple[str, bytes]:
    """Raw bytes, invalid UTF-8 inside JSON strings, zlib, truncated documents."""
    good = json.dumps(_good("bat-3")).encode()
    choice = draw(st.integers(0, 5))
    if choice == 0:
        payload = draw(st.binary(max_size=300))
    elif choice == 1:  # invalid UTF-8 in a name
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
        payload = good.replace(b'"boot_id": "b"', b'"boot_id": "b' + bad + b'"')
    elif choice == 2:  # compressed: whole, truncated or corrupted
        packed = zlib.compress(good)
        # draws must not depend on anything but earlier draws (zlib's length varies with seq)
        cut = 1 + draw(st.integers(0, 10_000)) % len(packed)
        payload = packed if draw(st.booleans()) else packed[:cut] + draw(st.binary(max_size=8))
    elif choice == 3:  # the document cut short
        payload = good[: draw(st.integers(0, 10_000)) % len(good)]
    elif choice == 4:  # BOM, whitespace, trailing junk
        payload = draw(st.sampled_from([b"\xef\xbb\xbf", b" \n\t", b""])) + good + draw(
            st.sampled_from([b"", b" ", b"}", b"x", b"\x00"]))
    else:
        payload = b"{}" if draw(st.booleans()) else b"\x78" + draw(
            st.binary(max_size=40))
    return telemetry_topic(TENANT, "bat-3"), payload


@st.composite
def _topic_trick(draw: st.DrawFn) -> tuple[str, bytes]:
    device = draw(st.sampled_from(DEVICES))
    payload = json.dumps(_good(device)).encode()
    choice = draw(st.integers(0, 4))
    if choice == 0:  # a registered device under another tenant
        return telemetry_topic(OTHER, "hp-1"), payload
    if choice == 1:  # the payload names another device than the topic
        other = draw(st.sampled_from([d for d in DEVICES if d != device]))
        return telemetry_topic(TENANT, other), payload
    if choice == 2:  # an empty level matches '+'
        return f"forewarn/v1/{TENANT}//telemetry", payload
    if choice == 3:  # an odd device level the broker passes (it refuses wildcards, control
        # characters and non-characters itself, disconnecting the client)
        level = draw(st.text(st.characters(blacklist_characters="/+#",
                                           blacklist_categories=("Cc", "Cs", "Cn")),
                             min_size=1, max_size=300))
        return telemetry_topic(TENANT, level), payload
    return telemetry_topic(OTHER, device), payload  # an unbound device elsewhere: fine


_message = st.one_of(_valid(), _mangled(), _nested(), _bytes(), _topic_trick())


def _generate() -> list[tuple[str, bytes]]:
    messages: list[tuple[str, bytes]] = []

    @settings(max_examples=N_PAYLOADS // _PER_EXAMPLE, database=None,
              phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(_message, min_size=_PER_EXAMPLE, max_size=_PER_EXAMPLE))
    def collect(drawn: list[tuple[str, bytes]]) -> None:
        messages.extend(drawn)

    collect()
    big = json.dumps(_good("hp-1")).encode()
    messages += [
        (telemetry_topic(TENANT, "hp-1"), big + b" " * (4 * 1024 * 1024)),  # too large
        (telemetry_topic(TENANT, "hp-1"), zlib.compress(b"{" + b" " * (20 * 1024 * 1024))),
        (telemetry_topic(TENANT, "hp-1"), b"[" * (4 * 1024 * 1024 - 16)),  # deep and large
    ]
    return messages


def _pipeline(detector: BatchDetector, store: EmbeddedStore,
              dead_letters: DeadLetters) -> CorePipeline:
    return CorePipeline(detector, store, dead_letters=dead_letters, device_tenant=BOUND.get,
                        future_horizon_s=HORIZON, clock=time.time)


def test_ten_thousand_hostile_payloads_through_the_real_ingest_loop(tmp_path: Path) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    messages = _generate()
    assert len(messages) >= N_PAYLOADS

    # what each message must become: the same pipeline, fed directly
    # (a cheap detector: which messages are bad does not depend on it; a crash of the
    # service's detector would show as a "crash" dead letter the reference does not have)
    reference = _pipeline(RobustZ(), EmbeddedStore(":memory:"), DeadLetters())
    for topic, payload in messages:
        reference.process_payload(topic, payload)
    expected = dict(reference.dead_letters.counts)
    assert "crash" not in expected, expected
    assert reference.stats.batches_ingested > 500 and sum(expected.values()) > 5000, (
        reference.stats, expected)

    dead_db = create_engine(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    store = EmbeddedStore(tmp_path / "telemetry.sqlite")
    pipeline = _pipeline(make_detector(DetectorConfig()), store,
                         DeadLetters(store=DeadLetterStore(dead_db)))
    handed: list[ScoredBatch] = []

    async def sink(batch: ScoredBatch) -> None:
        handed.append(batch)

    with Mosquitto(tmp_path / "mosquitto") as broker:
        service = CoreService(MqttConfig(port=broker.port, client_id="fuzz-core",
                                         subscription="forewarn/v1/+/+/telemetry"),
                              pipeline, sink)
        asyncio.run(_drive(service, broker.port, messages,
                           lambda: pipeline.stats.messages >= len(messages) + 1))

    assert pipeline.stats.messages == len(messages) + 1
    assert dict(pipeline.dead_letters.counts) == expected
    assert DeadLetterStore(dead_db).counts() == expected  # persisted, reason by reason
    assert pipeline.stats.batches_ingested == reference.stats.batches_ingested + 1
    assert len(handed) == pipeline.stats.batches_ingested
    # the valid message sent after everything else was stored
    assert store.read(TENANT, "hp-2", NOW + 59.0, NOW + 61.0).t.tolist() == [NOW + 60.0]
    store.close()
    dead_db.dispose()


async def _drive(service: CoreService, port: int, messages: list[tuple[str, bytes]],
                 done: Callable[[], bool]) -> None:
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            await service.ingestor.connected.wait()
        async with aiomqtt.Client("127.0.0.1", port, identifier="fuzz-device") as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)
            last = _good("hp-2", n=1, t0=NOW + 60.0)
            await client.publish(telemetry_topic(TENANT, "hp-2"), json.dumps(last).encode(),
                                 qos=1)
        deadline = time.monotonic() + 120
        while not done() and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        assert not task.done(), f"the ingest loop ended: {task}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
