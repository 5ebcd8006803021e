"""The msgspec fast path of :mod:`core.decode` never accepts what pydantic would refuse.

The worker's throughput rests on skipping pydantic for plainly valid batches; this checks, over
generated payloads near the edges of every constraint, that whenever the fast path returns a
batch, :class:`TelemetryBatch` validation accepts the same payload and yields an equal batch.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.decode import _fast_batch
from edge.schema import TelemetryBatch

_GOOD = ["a", "hp-1", "x.y", "a" * 64, "Z9_-."]
_BAD = ["_bad", "", "a" * 65, "ü", "a b"]
_numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                     st.integers(-10, 10))
_odd_numbers = st.sampled_from(["1.5", True, 1e308, None])


@st.composite
def _payloads(draw: st.DrawFn) -> bytes:
    """A valid batch with at most one thing bent towards, or past, a limit."""
    k = draw(st.integers(1, 4))
    n = draw(st.integers(1, 4))
    body: dict[str, Any] = {
        "device_id": draw(st.sampled_from(_GOOD)), "boot_id": draw(st.sampled_from(_GOOD)),
        "seq": draw(st.integers(0, 2**63 - 1)),
        "fields": [f"f{i}" for i in range(k)],
        "t": draw(st.lists(st.floats(0, 2e9), min_size=n, max_size=n)),
        "values": draw(st.lists(st.lists(_numbers, min_size=k, max_size=k),
                                min_size=n, max_size=n)),
    }
    if draw(st.booleans()):
        body["product"] = draw(st.sampled_from(_GOOD))
    if draw(st.booleans()):
        body["firmware"] = draw(st.one_of(st.none(), st.text(max_size=64)))
    bend = draw(st.sampled_from([
        "none", "name", "field", "dup_field", "seq", "seq_float", "v", "extra", "t_neg",
        "ragged", "rows", "odd_value", "firmware", "no_fields", "inf"]))
    if bend == "name":
        body[draw(st.sampled_from(["device_id", "boot_id", "product"]))] = \
            draw(st.sampled_from(_BAD))
    elif bend == "field":
        body["fields"][0] = draw(st.sampled_from(_BAD))
    elif bend == "dup_field" and k > 1:
        body["fields"][1] = body["fields"][0]
    elif bend == "seq":
        body["seq"] = draw(st.sampled_from([-1, 2**63, 2**64]))
    elif bend == "seq_float":
        body["seq"] = 1.0
    elif bend == "v":
        body["v"] = draw(st.sampled_from([1, 2, "1"]))
    elif bend == "extra":
        body["extra"] = 1
    elif bend == "t_neg":
        body["t"][0] = -1.0
    elif bend == "ragged":
        body["values"][0].append(1.0)
    elif bend == "rows":
        body["values"].append([1.0] * k)
    elif bend == "odd_value":
        body["values"][0][0] = draw(_odd_numbers)
    elif bend == "firmware":
        body["firmware"] = "x" * 65
    elif bend == "no_fields":
        body["fields"], body["values"] = [], [[] for _ in range(n)]
    text = json.dumps(body)
    if bend == "inf":
        text = text.replace('"t": [', '"t": [1e999, ', 1)
    return text.encode()


@settings(max_examples=400, deadline=None)
@given(_payloads())
def test_fast_path_accepts_only_what_pydantic_accepts(payload: bytes) -> None:
    fast = _fast_batch(payload)
    if fast is None:
        return
    try:
        slow = TelemetryBatch.model_validate_json(payload)
    except ValidationError as exc:  # pragma: no cover - this is the failure being looked for
        raise AssertionError(f"fast path accepted what pydantic refuses: {exc}") from exc
    assert fast.model_dump().keys() == slow.model_dump().keys()
    for key, value in slow.model_dump().items():
        other = fast.model_dump()[key]
        if key in ("t", "values"):
            flat = json.dumps(value) == json.dumps(other) or all(
                (a is None and b is None) or (a is not None and b is not None
                                              and math.isclose(a, b))
                for ra, rb in zip(value, other, strict=True)
                for a, b in (zip(ra, rb, strict=True) if key == "values" else [(ra, rb)]))
            assert flat, key
        else:
            assert value == other, key
