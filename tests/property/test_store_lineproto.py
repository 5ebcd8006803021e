"""For any batch, line protocol from arrays says what influxdb-client's ``Point`` says.

Compared point by point after parsing (``Point`` sorts fields by key and writes ``1.0`` as
``1``; both are the same point to InfluxDB). Names run over letters, digits and the characters
line protocol must escape (space, comma, equals sign) plus braces (which must not confuse the
row template); values over all floats, NaN and infinities included (left out, as ``Point``
leaves them out).
"""

# influxdb-client's Point has no type hints
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from core.events import ScoredBatch
from core.store.lineproto import encode_batch

names = st.text(alphabet="aZ09_.- ,={}", min_size=1, max_size=8).filter(
    lambda name: name.strip() == name  # Point and InfluxDB disagree on edge spaces; schema forbids
)


@st.composite
def batches(draw: st.DrawFn) -> ScoredBatch:
    n = draw(st.integers(1, 20))
    fields = tuple(draw(st.lists(names, min_size=1, max_size=5, unique=True)))
    k = len(fields)
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    values = draw(hnp.arrays(np.float64, (n, k), elements=floats))
    scores = draw(hnp.arrays(np.float64, (n, k), elements=floats))
    ms = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 4_000_000_000_000), unique=True))
    return ScoredBatch(draw(names), draw(names), draw(names), fields,
                       (ms / 1000.0).astype(np.float64), values, scores)


def point_lines(batch: ScoredBatch) -> list[str]:
    lines = []
    for measurement, matrix in (("telemetry", batch.values), ("anomaly", batch.scores)):
        for i in range(batch.n_samples):
            point = Point(measurement)
            point.tag("tenant", batch.tenant).tag("device", batch.device_id)
            point.tag("product", batch.product)
            point.time(round(float(batch.t[i]) * 1000), WritePrecision.MS)
            for j, name in enumerate(batch.fields):
                point.field(name, float(matrix[i, j]))
            line = point.to_line_protocol()
            if line:  # Point writes nothing for a point without a finite field
                lines.append(line)
    return lines


def split(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on ``sep`` where it is not escaped by a backslash; escapes stay in the pieces."""
    pieces, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if text[i] == sep and maxsplit != 0:
            pieces.append(current)
            current, maxsplit = "", maxsplit - 1
        else:
            current += text[i]
        i += 1
    return [*pieces, current]


def unescape(text: str) -> str:
    for char in " ,=":
        text = text.replace("\\" + char, char)
    return text


Parsed = tuple[str, tuple[tuple[str, str], ...], dict[str, float], int]


def parse(line: str) -> Parsed:
    series, fields, ts = split(line, " ")
    measurement, *tags = split(series, ",")
    tag_pairs = tuple(tuple(unescape(x) for x in split(tag, "=", 1)) for tag in tags)
    values = {unescape(k): float(v) for k, v in (split(f, "=", 1) for f in split(fields, ","))}
    return unescape(measurement), tag_pairs, values, int(ts)  # type: ignore[return-value]


@settings(max_examples=100, deadline=None)
@given(batches())
def test_array_lines_are_the_points_point_writes(batch: ScoredBatch) -> None:
    body = encode_batch(batch).decode()
    ours = [parse(line) for line in body.split("\n")] if body else []
    theirs = [parse(line) for line in point_lines(batch)]
    assert [(m, dict(t), f, ts) for m, t, f, ts in ours] == [
        (m, dict(t), f, ts) for m, t, f, ts in theirs
    ]
