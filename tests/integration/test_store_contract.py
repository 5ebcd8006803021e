"""The contract every time-series store keeps, run against each implementation.

``influx`` is :class:`InfluxStore` end to end: line protocol into a real VictoriaMetrics, Flux
reads answered from what VictoriaMetrics stored (tests/servers/influx_query.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.events import DetectorEvent, ScoredBatch
from core.store.base import HistoryStore
from core.store.buffered import BufferedStore
from core.store.config import InfluxConfig
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore

pytestmark = pytest.mark.integration

T0 = 1_699_999_980.0  # a multiple of 60 s (window boundaries below)
FIELDS = ("current", "discharge_temp")


@dataclass
class Subject:
    store: HistoryStore
    keeps_text: bool  # detector explanations survive a round trip


def _embedded(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    return Subject(EmbeddedStore(tmp_path / "fw.sqlite3"), keeps_text=True)


def _buffered(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    inner = EmbeddedStore(tmp_path / "fw.sqlite3")
    return Subject(BufferedStore(inner, tmp_path / "spool"), keeps_text=True)


def _influx(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    bridge = request.getfixturevalue("influx_bridge")
    # VictoriaMetrics keeps numbers only, so explanations are not written there
    config = InfluxConfig(url=bridge.url, org="fw", bucket="fw", write_explanations=False)
    return Subject(InfluxStore(config), keeps_text=False)


def _buffered_influx(tmp_path: Path, request: pytest.FixtureRequest) -> Subject:
    influx = _influx(tmp_path, request)
    return Subject(BufferedStore(influx.store, tmp_path / "spool"), keeps_text=False)


MAKERS: dict[str, Callable[[Path, pytest.FixtureRequest], Subject]] = {
    "embedded": _embedded,
    "buffered-embedded": _buffered,
    "influx-victoriametrics": _influx,
    "buffered-influx-victoriametrics": _buffered_influx,
}


@pytest.fixture(params=sorted(MAKERS))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    made = MAKERS[request.param](tmp_path, request)
    yield made
    made.store.close()


def batch(
    tenant: str, device: str = "hp-1", start: float = T0, n: int = 10, step: float = 6.0,
    events: tuple[DetectorEvent, ...] = (),
) -> ScoredBatch:
    t = (start + np.arange(n) * step + 0.125).astype(np.float64)
    values = np.column_stack([10.0 + np.arange(n), 50.0 + 0.5 * np.arange(n)]).astype(np.float64)
    scores = np.column_stack([np.linspace(0.0, 0.9, n), np.full(n, 0.05)]).astype(np.float64)
    return ScoredBatch(tenant, device, "heat_pump", FIELDS, t, values, scores, events)


def test_written_samples_read_back_exactly(subject: Subject, tenant: str) -> None:
    sent = batch(tenant)
    subject.store.write(sent)
    frame = subject.store.read(tenant, "hp-1", T0, T0 + 3600)
    assert frame.fields == FIELDS
    np.testing.assert_allclose(frame.t, sent.t, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(frame.values, sent.values)
    np.testing.assert_allclose(frame.scores, sent.scores)


def test_missing_values_stay_missing_and_all_missing_rows_are_not_samples(
    subject: Subject, tenant: str
) -> None:
    sent = batch(tenant, n=3)
    sent.values[1, 0] = np.nan
    sent.values[2, :] = np.nan
    sent.scores[2, :] = np.nan
    subject.store.write(sent)
    frame = subject.store.read(tenant, "hp-1", T0, T0 + 3600)
    assert frame.t.shape == (2,)
    assert np.isnan(frame.values[1, 0]) and frame.values[1, 1] == sent.values[1, 1]
    assert subject.store.count_samples(tenant) == 2


@pytest.mark.parametrize(
    ("start", "stop", "expected_rows"),
    [(T0, T0 + 6.125, 1), (T0 + 6.125, T0 + 30.125, 4), (T0 + 60, T0 + 120, 0)],
    ids=["stop-is-exclusive", "start-is-inclusive", "empty"],
)
def test_reads_cover_start_inclusive_stop_exclusive(
    subject: Subject, tenant: str, start: float, stop: float, expected_rows: int
) -> None:
    subject.store.write(batch(tenant))
    frame = subject.store.read(tenant, "hp-1", start, stop)
    assert frame.values.shape[0] == expected_rows == frame.t.shape[0]


def test_downsampling_averages_values_and_keeps_the_highest_score(
    subject: Subject, tenant: str
) -> None:
    sent = batch(tenant, n=20)  # 6 s apart: 10 samples per 60 s window
    subject.store.write(sent)
    frame = subject.store.read(tenant, "hp-1", T0, T0 + 3600, every_s=60.0)
    np.testing.assert_allclose(frame.t, [T0, T0 + 60.0])
    np.testing.assert_allclose(frame.values[:, 0], [sent.values[:10, 0].mean(),
                                                    sent.values[10:, 0].mean()])
    np.testing.assert_allclose(frame.scores[:, 0], [sent.scores[:10, 0].max(),
                                                    sent.scores[10:, 0].max()])


def test_rewriting_the_same_batch_changes_nothing(subject: Subject, tenant: str) -> None:
    sent = batch(tenant)
    subject.store.write(sent)
    subject.store.write(sent)
    subject.store.write_many([sent, sent])
    assert subject.store.count_samples(tenant) == sent.n_samples
    frame = subject.store.read(tenant, "hp-1", T0, T0 + 3600)
    np.testing.assert_array_equal(frame.values, sent.values)


def test_count_is_per_tenant_and_devices_stay_apart(subject: Subject, tenant: str) -> None:
    other = tenant + "x"
    subject.store.write_many([batch(tenant, "hp-1"), batch(tenant, "hp-2", n=4), batch(other)])
    assert subject.store.count_samples(tenant) == 14
    assert subject.store.count_samples(other) == 10
    assert subject.store.read(tenant, "hp-2", T0, T0 + 3600).t.shape == (4,)


def test_detector_onsets_read_back(subject: Subject, tenant: str) -> None:
    onset = DetectorEvent(
        tenant=tenant, device_id="hp-1", product="heat_pump", field="discharge_temp",
        detector="robust_z", ts=T0 + 12.125, score=0.97, value=88.5,
        explanation="discharge_temp 88.5 is 6.1 spreads above its level", time_to_limit_s=3600.0,
    )
    subject.store.write(batch(tenant, events=(onset,)))
    events = subject.store.read_events(tenant, "hp-1", T0, T0 + 3600)
    assert len(events) == 1
    got = events[0]
    assert (got.field, got.detector, got.product) == ("discharge_temp", "robust_z", "heat_pump")
    assert got.ts == pytest.approx(onset.ts, abs=1e-6)
    assert (got.score, got.value, got.time_to_limit_s) == (0.97, 88.5, 3600.0)
    if subject.keeps_text:
        assert got.explanation == onset.explanation
    assert subject.store.read_events(tenant, "hp-1", T0 + 13, T0 + 3600) == ()
    # onsets are not samples, and do not show up as a field in the history
    assert subject.store.read(tenant, "hp-1", T0, T0 + 3600).fields == FIELDS


def test_the_product_of_a_device_is_known_once_it_has_samples(
    subject: Subject, tenant: str
) -> None:
    assert subject.store.product_of(tenant, "hp-1") is None
    subject.store.write(batch(tenant))
    assert subject.store.product_of(tenant, "hp-1") == "heat_pump"
