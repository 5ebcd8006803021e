"""InfluxStore's Flux read path against recorded annotated-CSV answers (tests/fixtures/influx)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from core.store.base import StoreError, StoreRejectedError
from core.store.config import InfluxConfig
from core.store.influx import InfluxStore
from tests.servers.influx_query import InfluxQueryServer, fixture_responder, rfc3339

pytestmark = pytest.mark.integration

T0 = 1_699_999_980.0  # 2023-11-14T22:13:00Z
FILES = {"read": "read.csv", "events": "events.csv", "count": "count.csv",
         "product": "product.csv"}


@pytest.fixture
def server() -> Iterator[InfluxQueryServer]:
    with InfluxQueryServer(fixture_responder(FILES)) as running:
        yield running


@pytest.fixture
def store(server: InfluxQueryServer) -> Iterator[InfluxStore]:
    with InfluxStore(InfluxConfig(url=server.url, org="acme", bucket="fleet", retries=0)) as made:
        yield made


def test_read_pivots_long_tables_into_a_frame(store: InfluxStore) -> None:
    frame = store.read("acme", "hp-1", T0, T0 + 3600)
    assert frame.fields == ("current", "discharge_temp")
    np.testing.assert_allclose(frame.t, [T0 + 0.125, T0 + 6.125])
    np.testing.assert_array_equal(frame.values, [[10.0, 50.0], [11.5, np.nan]])
    np.testing.assert_array_equal(frame.scores, [[0.1, np.nan], [0.8, np.nan]])


def test_read_sends_one_query_for_the_device_and_window(
    store: InfluxStore, server: InfluxQueryServer
) -> None:
    store.read("acme", "hp-1", T0, T0 + 3600, every_s=60.0)
    (query,) = server.queries
    assert query.startswith("// forewarn:read\n")
    assert 'from(bucket: "fleet")' in query
    assert f"range(start: {rfc3339(T0)[:-1]}.000000Z" in query
    assert 'r.tenant == "acme" and r.device == "hp-1"' in query
    assert query.count("aggregateWindow(every: 60000000us") == 2
    assert "fn: mean" in query and "fn: max" in query


def test_names_are_escaped_into_flux_strings(store: InfluxStore, server: InfluxQueryServer) -> None:
    store.read('ac"me', "hp\\1", T0, T0 + 1)
    assert 'r.tenant == "ac\\"me" and r.device == "hp\\\\1"' in server.queries[0]


def test_events_decode_quoted_text_and_null_numbers(store: InfluxStore) -> None:
    first, second = store.read_events("acme", "hp-1", T0, T0 + 3600)
    assert (first.ts, first.field, first.detector) == (T0 + 6.125, "current", "trend")
    assert first.time_to_limit_s is None and first.explanation == ""
    assert second.explanation == 'discharge_temp 88.5 is "high", rising'
    assert (second.score, second.value, second.time_to_limit_s) == (0.97, 88.5, 3600.0)
    assert second.tenant == "acme" and second.product == "heat_pump"


def test_count_sums_the_per_device_counts(store: InfluxStore, server: InfluxQueryServer) -> None:
    assert store.count_samples("acme") == 2160
    assert 'r.tenant == "acme"' in server.queries[0]


def test_product_comes_from_the_tag_values(store: InfluxStore, server: InfluxQueryServer) -> None:
    assert store.product_of("acme", "hp-1") == "heat_pump"
    assert 'schema.tagValues(bucket: "fleet", tag: "product"' in server.queries[0]


def _answer(status: int) -> InfluxQueryServer:
    body = json.dumps({"code": "invalid", "message": "error @3:6-3:11: undefined identifier"})
    return InfluxQueryServer(lambda query: (status, "application/json", body.encode()))


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, StoreRejectedError), (401, StoreRejectedError), (429, StoreError), (503, StoreError)],
    ids=["bad-query", "unauthorised", "too-many-requests", "unavailable"],
)
def test_error_answers_become_store_errors(status: int, error: type[StoreError]) -> None:
    with (
        _answer(status) as server,
        InfluxStore(InfluxConfig(url=server.url, retries=0)) as store,
        pytest.raises(error) as caught,
    ):
        store.count_samples()
    assert str(status) in str(caught.value)
    assert (error is StoreRejectedError) == isinstance(caught.value, StoreRejectedError)


def test_an_empty_answer_is_an_empty_frame() -> None:
    with (
        InfluxQueryServer(lambda query: (200, "text/csv", b"\r\n")) as server,
        InfluxStore(InfluxConfig(url=server.url, retries=0)) as store,
    ):
        frame = store.read("acme", "hp-1", T0, T0 + 60)
    assert frame.fields == () and frame.t.shape == (0,) and frame.values.shape == (0, 0)
