"""What InfluxStore's writes leave in a real server, checked through VictoriaMetrics' export API.

VictoriaMetrics maps line protocol to series ``{measurement}_{field}`` with the tags as labels and
keeps millisecond timestamps, so every value written can be found again (to the 12 significant
digits VictoriaMetrics keeps: it stores floats as scaled decimals).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from core.events import DetectorEvent, ScoredBatch
from core.store.base import StoreError, StoreRejectedError
from core.store.config import InfluxConfig
from core.store.influx import InfluxStore
from tests.servers.influx_query import InfluxQueryServer
from tests.servers.victoria import VictoriaMetrics, free_port

pytestmark = pytest.mark.integration

T0 = 1_699_999_980.0


def scored(tenant: str, n: int = 50, device: str = "hp-1") -> ScoredBatch:
    rng = np.random.default_rng(3)
    t = (T0 + np.arange(n) * 1.5).astype(np.float64)
    values = rng.normal(20.0, 3.0, size=(n, 3))
    values[7, 1] = np.nan
    scores = rng.uniform(0.0, 1.0, size=(n, 3))
    return ScoredBatch(tenant, device, "heat_pump", ("current", "discharge_temp", "flow"), t,
                       values, scores)


@pytest.fixture
def store(victoria: VictoriaMetrics) -> Iterator[InfluxStore]:
    config = InfluxConfig(url=victoria.url, write_explanations=False, max_lines_per_request=64)
    with InfluxStore(config) as made:
        yield made


def by_name(vm: VictoriaMetrics, selector: str) -> dict[str, dict[str, Any]]:
    return {item["metric"]["__name__"]: item for item in vm.export(selector)}


def test_each_value_lands_in_its_series_with_tags_as_labels(
    store: InfluxStore, victoria: VictoriaMetrics, tenant: str
) -> None:
    batch = scored(tenant)
    store.write(batch)  # 100 lines, so two requests of at most 64
    series = by_name(victoria, f'{{tenant="{tenant}"}}')
    assert set(series) == {f"{m}_{f}" for m in ("telemetry", "anomaly") for f in batch.fields}
    current = series["telemetry_current"]
    assert current["metric"] == {"__name__": "telemetry_current", "tenant": tenant,
                                 "device": "hp-1", "product": "heat_pump"}
    assert current["timestamps"] == np.rint(batch.t * 1000).astype(int).tolist()
    np.testing.assert_allclose(current["values"], batch.values[:, 0], rtol=1e-11)
    temp = series["telemetry_discharge_temp"]
    assert len(temp["values"]) == batch.n_samples - 1  # the missing reading is not written
    np.testing.assert_allclose(series["anomaly_flow"]["values"], batch.scores[:, 2], rtol=1e-11)


def test_write_many_and_rewrites_store_each_sample_once(
    store: InfluxStore, victoria: VictoriaMetrics, tenant: str
) -> None:
    batches = [scored(tenant, device=f"hp-{i}") for i in range(4)]
    store.write_many(batches)
    store.write_many(batches[:2])
    assert victoria.count_values(f'{{__name__="telemetry_current",tenant="{tenant}"}}') == 200


def test_onsets_land_in_the_anomaly_measurement_tagged_with_detector_and_field(
    store: InfluxStore, victoria: VictoriaMetrics, tenant: str
) -> None:
    onset = DetectorEvent(tenant, "hp-1", "heat_pump", "flow", "robust_z", T0 + 3.0, 0.91, 2.5,
                          "flow low")
    store.write(ScoredBatch(tenant, "hp-1", "heat_pump", ("flow",), np.array([T0 + 3.0]),
                            np.array([[2.5]]), np.array([[0.91]]), (onset,)))
    series = by_name(victoria, f'{{tenant="{tenant}",detector="robust_z"}}')
    assert set(series) == {"anomaly_onset", "anomaly_score", "anomaly_value"}
    assert series["anomaly_score"]["metric"]["field"] == "flow"
    assert series["anomaly_score"]["values"] == [0.91]


def test_a_gzipped_write_lands_too(victoria: VictoriaMetrics, tenant: str) -> None:
    with InfluxStore(InfluxConfig(url=victoria.url, gzip=True)) as store:
        store.write(scored(tenant))
    assert victoria.count_values(f'{{__name__="telemetry_flow",tenant="{tenant}"}}') == 50


def test_nobody_listening_is_a_store_error_to_retry(tenant: str) -> None:
    config = InfluxConfig(url=f"http://127.0.0.1:{free_port()}", retries=1, timeout_s=2.0)
    with InfluxStore(config) as store, pytest.raises(StoreError) as caught:
        store.write(scored(tenant))
    assert not isinstance(caught.value, StoreRejectedError)


def test_a_server_that_hangs_is_a_store_error_after_the_timeout(tenant: str) -> None:
    # a socket that listens but never answers: the connection is made, the reply never comes
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with (
            InfluxStore(InfluxConfig(url=url, retries=0, timeout_s=0.3)) as store,
            pytest.raises(StoreError) as caught,
        ):
            store.write(scored(tenant))
        assert time.monotonic() - started < 5.0
    assert not isinstance(caught.value, StoreRejectedError)


def test_a_refusal_is_final(tenant: str) -> None:
    # the query stand-in has no write route: 404 for every write
    with (
        InfluxQueryServer(lambda query: (200, "text/csv", b"")) as server,
        InfluxStore(InfluxConfig(url=server.url, retries=3)) as store,
        pytest.raises(StoreRejectedError, match="404"),
    ):
        store.write(scored(tenant))
