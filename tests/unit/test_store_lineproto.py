"""Line protocol built from arrays says what influxdb-client's ``Point`` would say, only faster."""

# influxdb-client's Point has no type hints
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import numpy as np
import pytest
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from core.events import DetectorEvent, ScoredBatch
from core.store.base import StoreRejectedError
from core.store.config import InfluxConfig
from core.store.influx import InfluxStore
from core.store.lineproto import encode_batch, encode_events, escape_key, measurement_lines


def point_lines(batch: ScoredBatch) -> list[str]:
    """The same batch through influxdb-client's per-point path (the reference)."""
    lines = []
    for measurement, matrix in (("telemetry", batch.values), ("anomaly", batch.scores)):
        for i in range(batch.n_samples):
            point = Point(measurement)
            for key, tag in (("tenant", batch.tenant), ("device", batch.device_id),
                             ("product", batch.product)):
                point.tag(key, tag)
            point.time(round(batch.t[i] * 1000), WritePrecision.MS)
            finite = False
            for j, name in enumerate(batch.fields):
                if np.isfinite(matrix[i, j]):
                    point.field(name, float(matrix[i, j]))
                    finite = True
            if finite:
                lines.append(point.to_line_protocol())
    return lines


def test_array_lines_equal_point_lines_for_a_random_batch() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(0.0, 1e3, size=(200, 5)) * 10.0 ** rng.integers(-8, 8, size=(200, 5))
    values[rng.random(values.shape) < 0.1] = np.nan
    values[17, :] = np.nan
    values[18, 2] = np.inf
    scores = rng.random((200, 5))
    batch = ScoredBatch("acme", "hp 1", "heat,pump", ("a", "b b", "c=1", "d", "e"),
                        (1.7e9 + np.arange(200) * 0.001).astype(np.float64), values, scores)
    assert encode_batch(batch).decode().split("\n") == point_lines(batch)


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("plain", "plain"), ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a\\=b")],
    ids=["plain", "space", "comma", "equals"],
)
def test_names_are_escaped(name: str, escaped: str) -> None:
    assert escape_key(name) == escaped


def test_a_line_break_in_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        escape_key("a\nb")


def test_braces_in_names_do_not_confuse_the_row_template() -> None:
    lines = measurement_lines("m,t={x}", ["{0}"], np.array([5]), np.array([[1.5]]))
    assert lines == ["m,t={x} {0}=1.5 5"]


def test_onsets_carry_detector_and_field_tags_and_escaped_text() -> None:
    onset = DetectorEvent("acme", "hp-1", "heat_pump", "flow", "robust_z", 1.7e9, 0.9, np.nan,
                          'flow "low"\\', time_to_limit_s=None)
    (line,) = encode_events([onset])
    assert line == (
        "anomaly,detector=robust_z,device=hp-1,field=flow,product=heat_pump,tenant=acme "
        'onset=1i,score=0.9,explanation="flow \\"low\\"\\\\" 1700000000000'
    )
    assert "explanation" not in encode_events([onset], explanations=False)[0]


def test_an_empty_tag_is_refused_before_anything_is_sent() -> None:
    batch = ScoredBatch("acme", "", "heat_pump", ("a",), np.array([1.0]), np.array([[1.0]]),
                        np.array([[0.0]]))
    with pytest.raises(ValueError, match="must not be empty"):
        encode_batch(batch)
    # the store calls it a refusal (never worth retrying), before any request goes out
    with (
        InfluxStore(InfluxConfig(url="http://127.0.0.1:9", retries=0)) as store,
        pytest.raises(StoreRejectedError, match="must not be empty"),
    ):
        store.write(batch)
