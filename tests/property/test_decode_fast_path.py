"""The fast decoder never accepts what the schema of record refuses, and reads the same bits.

``core.decode.decode_fast`` (msgspec + the numba number parser) runs before pydantic's
``TelemetryBatch``; when it returns a batch, pydantic must accept the same payload and give the
same header and, number for number, the same float64 bits (NaN for null, the sign of -0.0).
The payloads are written by hand so that numbers come in every JSON spelling: integers,
fractions, exponents, leading zeros (invalid), more digits than a double holds, huge exponents,
``null`` where no null belongs, whitespace, unicode and control characters in names.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.decode import DecodedBatch, decode_fast, decode_telemetry
from core.errors import DecodeError
from edge.schema import TelemetryBatch

_ws = st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n"])


@st.composite
def _number(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == 1:
        return str(draw(st.integers(-(10**20), 10**20)))
    if kind == 2:  # a reading as sensors print it
        return f"{draw(st.floats(-1e6, 1e6)):.{draw(st.integers(0, 6))}f}"
    if kind == 3:  # digits, fraction and exponent spelled freely, valid or not
        sign = draw(st.sampled_from(["", "-", "+"]))
        whole = draw(st.text("0123456789", min_size=0, max_size=20))
        frac = draw(st.one_of(st.just(""), st.text("0123456789", max_size=20).map(
            lambda d: "." + d)))
        exp = draw(st.one_of(st.just(""), st.tuples(
            st.sampled_from(["e", "E"]), st.sampled_from(["", "+", "-"]),
            st.text("0123456789", max_size=4)).map("".join)))
        return sign + whole + frac + exp
    if kind == 4:
        return draw(st.sampled_from(["0", "-0", "-0.0", "0e400", "1e400", "-1e400", "1e-400",
                                     "9007199254740993", "9007199254740992", "1e22", "1e23",
                                     "123456789012345678", "0.1", "1.7e9", "null", "true",
                                     "\"1.5\"", "NaN", "Infinity", "[1]", "{}"]))
    return f"{draw(st.floats(-1e4, 1e4)):.{draw(st.integers(0, 4))}f}"


_name = st.one_of(
    st.sampled_from(["hp-1", "b1", "a", "b", "x.y", "f_2", "heat_pump"]),
    st.text(min_size=0, max_size=66),
    st.text("abc-._\n\u00e9Z09", min_size=1, max_size=6),
)


def _array(items: list[str], ws: str) -> str:
    return "[" + ws + ("," + ws).join(items) + ws + "]"


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    """Half the time a well-formed batch (numbers still in any spelling), else a mangled one."""
    wild = draw(st.booleans())
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, 4))
    fields = [f"f{j}" for j in range(k)]
    if wild and draw(st.booleans()):
        fields = draw(st.lists(_name, min_size=0, max_size=5))
    ws = draw(_ws)
    number = _number() if wild else _number().filter(lambda x: x[:1] in "-0123456789")
    extra_rows = st.sampled_from([0, 0, 0, 0, 1, -1]) if wild else st.just(0)
    extra_cols = st.sampled_from([0, 0, 0, 0, 0, 1, -1]) if wild else st.just(0)
    rows = []
    for _ in range(n + draw(extra_rows)):
        width = len(fields) + draw(extra_cols)
        rows.append(_array([draw(st.one_of(number, st.just("null")))
                            for _ in range(max(width, 0))], ws))
    t = [draw(number) for _ in range(n)]

    def pick(valid: st.SearchStrategy[str], mangled: st.SearchStrategy[str]) -> str:
        return draw(st.one_of(valid, mangled) if wild else valid)

    doc = {
        "v": pick(st.just("1"), st.sampled_from(["2", "1.0", "true"])),
        "device_id": json.dumps(pick(st.just("hp-1"), _name)),
        "boot_id": json.dumps(pick(st.just("b1"), _name)),
        "seq": pick(st.sampled_from(["0", "7", str(2**63 - 1)]),
                    st.sampled_from(["-1", str(2**63), "3.0", "\"4\"", "null"])),
        "fields": json.dumps(fields),
        "t": _array(t, ws),
        "values": _array(rows, ws),
    }
    if draw(st.booleans()):
        doc["product"] = json.dumps(pick(st.just("heat_pump"), _name))
    if draw(st.booleans()):
        doc["firmware"] = json.dumps(draw(st.one_of(st.none(), st.text(max_size=70))))
    if wild and draw(st.integers(0, 9)) == 0:
        doc["extra"] = "1"
    if wild and draw(st.integers(0, 9)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    keys = draw(st.permutations(sorted(doc)))
    return ("{" + ws + ("," + ws).join(f'"{key}":{ws}{doc[key]}' for key in keys) + ws
            + "}").encode()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@given(_payload())
def test_fast_path_agrees_with_the_schema_of_record(payload: bytes) -> None:
    fast = decode_fast("acme", payload)
    try:
        slow: DecodedBatch | None = DecodedBatch.of(
            "acme", TelemetryBatch.model_validate_json(payload))
    except ValidationError:
        slow = None
    if fast is None:
        return  # pydantic decides, as before
    assert slow is not None, f"fast path accepted what the schema refuses: {payload!r}"
    assert (fast.device_id, fast.boot_id, fast.seq, fast.product, fast.firmware, fast.fields) \
        == (slow.device_id, slow.boot_id, slow.seq, slow.product, slow.firmware, slow.fields)
    assert _same_bits(fast.t, slow.t), (fast.t, slow.t)
    assert _same_bits(fast.values, slow.values), (fast.values, slow.values)


@given(st.lists(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False,
                                                        width=32).map(float)),
                         min_size=3, max_size=3), min_size=1, max_size=20))
def test_what_the_edge_agent_sends_takes_the_fast_path(rows: list[list[float | None]]) -> None:
    """pydantic's own JSON of a batch (the edge agent's) decodes fast, to the same values."""
    batch = TelemetryBatch(device_id="hp-1", boot_id="b1", seq=3, product="heat_pump",
                           fields=["a", "b", "c"], t=[1.7e9 + 60.0 * i for i in range(len(rows))],
                           values=rows)
    payload = batch.model_dump_json().encode()
    fast = decode_fast("acme", payload)
    slow = DecodedBatch.of("acme", batch)
    if fast is None:  # only a number with more digits than the fast path converts exactly
        assert any(len(repr(v).replace("-", "").replace(".", "").lstrip("0")) > 15
                   for row in rows for v in row if v is not None and not math.isnan(v))
        return
    assert _same_bits(fast.values, slow.values)
    assert _same_bits(fast.t, slow.t)


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],"t":[1],"values":[[1e400]]}',
     "invalid"),
    (b'{"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],"t":[-1],"values":[[1]]}',
     "invalid"),
    (b'{"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],"t":[1],"values":[[1,2]]}',
     "invalid"),
    (b'{"device_id":"hp-2","boot_id":"b","seq":0,"fields":["a"],"t":[1],"values":[[1]]}',
     "device_mismatch"),
    (b'{"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a\\n"],"t":[1],"values":[[1]]}',
     "invalid"),
])
def test_refusals_keep_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_telemetry("forewarn/v1/acme/hp-1/telemetry", payload)
    assert err.value.reason == reason


_STRICT = '{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],"t":[1],"values":[[1]]}'


@pytest.mark.parametrize(("part", "lax"), [
    ('"seq":0', '"seq":true'), ('"seq":0', '"seq":"0"'), ('"seq":0', '"seq":0.0'),
    ("[[1]]", '[["1.5"]]'), ("[[1]]", "[[true]]"), ('"t":[1]', '"t":[true]'),
    ('"t":[1]', '"t":["1"]'), ('"v":1', '"v":true'), ('"v":1', '"v":1.0'),
], ids=lambda text: text)
def test_numbers_are_numbers(part: str, lax: str) -> None:
    """Telemetry is strict (issue 18.9): neither decoder coerces a string or a boolean."""
    payload = _STRICT.replace(part, lax, 1).encode()
    assert payload != _STRICT.encode()
    assert decode_fast("acme", payload) is None
    with pytest.raises(ValidationError):
        TelemetryBatch.model_validate_json(payload)
    with pytest.raises(DecodeError) as err:
        decode_telemetry("forewarn/v1/acme/hp-1/telemetry", payload)
    assert err.value.reason == "invalid"
    assert decode_fast("acme", _STRICT.encode()) is not None
