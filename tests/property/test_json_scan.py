"""The numba scan of flat JSON readings (core/mapping/json_scan.py) reads what orjson and the
mapping's rules read, or leaves the message to them.

Documents are flat readings and arrays of them, written with any JSON spacing, with strings,
escapes, non-ASCII text, booleans, nulls, big and exact and inexact numbers, nested values, a
key twice, readings of other layouts, then sometimes cut or with a byte changed. Whatever the
scan takes must be, bit for bit, what the general decoder (``decode_json(..., fast=False)``)
gives; a group of messages read at once (``MappedDecoder.readings``) must give each message
what the decoder gives it alone.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from core.errors import DecodeError
from core.mapping import MappedDecoder, MappingConfig
from core.mapping.json_format import _scanned, decode_json

_KEYS = ["ts", "temp", "rpm", "mode", "a\\u0062", "x y", "é", "ts2"]
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-2**60, 2**60), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e4, 1e4).map(lambda v: round(v, 3)), st.integers(1_600_000_000, 1_800_000_000_000),
    st.sampled_from([-0.0, 0.0, 1e22, 1e23, 5e-324]),
    st.text(max_size=4))
_value = _scalar | st.lists(_scalar, max_size=2) | st.dictionaries(st.sampled_from(_KEYS), _scalar,
                                                                   max_size=2)
_number = st.sampled_from(["rounded"] * 6 + ["integer", "null", "any", "edge"]).flatmap(
    lambda kind: {"rounded": st.floats(-1e4, 1e4).map(lambda v: round(v, 3)),
                  "integer": st.integers(-1000, 1000), "null": st.none(),
                  "any": st.floats(allow_nan=False, allow_infinity=False),
                  "edge": st.sampled_from([-0.0, 0, 1e22, 1e-7, 2**53, 2**53 + 1])}[kind])
_time = st.sampled_from(["s"] * 4 + ["ms", "float", "any"]).flatmap(
    lambda kind: {"s": st.integers(1_600_000_000, 1_800_000_000),
                  "ms": st.integers(1_600_000_000_000, 1_800_000_000_000),
                  "float": st.floats(1.6e9, 1.8e9).map(lambda v: round(v, 3)),
                  "any": _scalar}[kind])
_odd = st.lists(st.tuples(st.sampled_from(_KEYS), st.one_of(_scalar, _value)), max_size=3)


@st.composite
def _reading(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Mostly the usual reading (a time, numbers, a status), sometimes with odd keys."""
    pairs: list[tuple[str, Any]] = [("ts", draw(_time))] if draw(st.integers(0, 9)) else []
    pairs += [(f"f{j}", draw(_number)) for j in range(draw(st.integers(0, 4)))]
    if draw(st.booleans()):
        pairs.append(("status", draw(st.sampled_from(["ok"] * 6 + [True, "[", "é"]))))
    if not draw(st.integers(0, 5)):
        pairs += draw(_odd)
    return draw(st.permutations(pairs)) if not draw(st.integers(0, 3)) else pairs


def _key(key: str) -> str:
    """A key as JSON text; the one with a backslash is written as it is (an escape)."""
    return f'"{key}"' if "\\" in key else json.dumps(key, ensure_ascii=False)


def _text(draw: st.DrawFn, pairs: list[tuple[str, Any]]) -> str:
    """A reading as JSON text, with a key twice where ``pairs`` has one twice."""
    space = draw(st.sampled_from(["", " ", "\n\t", "\r\n  "]))
    items = [_key(k) + f"{space}:{space}" + json.dumps(v, ensure_ascii=draw(st.booleans()))
             for k, v in pairs]
    return "{" + space + f",{space}".join(items) + space + "}"


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    first = draw(_reading())
    same_layout = draw(st.integers(0, 4)) > 0
    readings = [first]
    for _ in range(draw(st.integers(0, 4))):
        readings.append([(k, draw(_number if k.startswith("f") else _time) if k in (
            "ts", "f0", "f1", "f2", "f3") else v) for k, v in first] if same_layout
            else draw(_reading()))
    texts = [_text(draw, r) for r in readings]
    body = texts[0] if len(texts) == 1 and draw(st.booleans()) else "[" + ", ".join(texts) + "]"
    payload = (draw(st.sampled_from(["", " ", "\n"])) + body
               + draw(st.sampled_from(["", "", "", "", " ", "\n", ",", "x", "]"]))).encode()
    change = draw(st.sampled_from(["none"] * 12 + ["cut", "byte"]))
    if change == "cut" and payload:
        payload = payload[: draw(st.integers(0, len(payload) - 1))]
    elif change == "byte" and payload:
        at = draw(st.integers(0, len(payload) - 1))
        payload = payload[:at] + bytes([draw(st.integers(0, 255))]) + payload[at + 1:]
    return payload


_MAPPINGS = {
    "ignore": MappingConfig(name="scan", topic="acme/+site/+device/state", tenant="acme",
                            time_key="ts"),
    "dead-letter": MappingConfig(name="scan-strict", topic="acme/+site/+device/state",
                                 tenant="acme", time_key="ts", unknown_keys="dead-letter"),
    "arrival": MappingConfig(name="scan-arrival", topic="acme/+site/+device/state",
                             tenant="acme", rename={"rpm": "speed"}),
    "seconds": MappingConfig(name="scan-s", topic="acme/+site/+device/state", tenant="acme",
                             time_key="ts", time_unit="s"),
}


@settings(max_examples=500, deadline=None)
@given(payload=_payload(), which=st.sampled_from(sorted(_MAPPINGS)))
def test_the_scan_reads_what_the_general_decoder_reads(payload: bytes, which: str) -> None:
    mapping = _MAPPINGS[which]
    scanned = _scanned(mapping, payload, 1.7e9)
    event(f"scanned: {scanned is not None}")
    if scanned is None:
        return
    try:
        general = decode_json(mapping, payload, 1.7e9, fast=False)
    except DecodeError as exc:
        raise AssertionError(f"the scan took what the decoder refuses: {exc}") from None
    assert scanned[:2] == general[:2]
    assert scanned[2].tobytes() == general[2].tobytes()  # bit for bit: -0.0, NaN
    assert scanned[3].dtype == general[3].dtype and scanned[3].shape == general[3].shape
    assert scanned[3].tobytes() == general[3].tobytes()


@settings(max_examples=120, deadline=None)
@given(payloads=st.lists(st.tuples(st.integers(0, 3), _payload()), min_size=1, max_size=12),
       which=st.sampled_from(["ignore", "dead-letter", "seconds"]))
def test_a_group_read_at_once_is_each_message_decoded(payloads: list[tuple[int, bytes]],
                                                      which: str) -> None:
    decoder = MappedDecoder([_MAPPINGS[which]])
    messages = [(f"acme/s1/hp-{device}/state", payload) for device, payload in payloads]
    group = decoder.readings(messages)
    for i, (topic, payload) in enumerate(messages):
        found = group.found[i]
        event(f"read at once: {found is not None}")
        if found is None:
            continue
        batch = decoder(topic, payload)
        tenant, device, boot, seq, product, fields, t = found
        assert (tenant, device, boot, seq, product, fields) == (
            batch.tenant, batch.device_id, batch.boot_id, batch.seq, batch.product, batch.fields)
        assert np.array([t]).tobytes() == batch.t.tobytes()
        assert group.values[i, : len(fields)].tobytes() == batch.values.tobytes()
