"""Product limits: the example file loads, bad files name the problem, and the pipeline hands a
device's limits to its detector so a crossing raises the level and events carry a time to limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.detect import DetectorConfig, make_detector
from core.errors import LimitsFileError
from core.events import ScoredBatch
from core.limits import ProductLimits, load_limits
from core.pipeline import FORECAST_HORIZON_S, CorePipeline
from core.store.embedded import EmbeddedStore
from edge.schema import TelemetryBatch

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("current", "discharge", "suction")


def test_the_example_limits_file_loads() -> None:
    limits = load_limits(ROOT / "config/limits.yaml")
    arrays = limits.arrays("heat_pump", ("discharge_temp", "outdoor_temp"))
    assert arrays is not None
    assert arrays[1].tolist() == [80.0, np.inf]


@pytest.mark.parametrize("text, needle", [
    pytest.param("heat_pump:\n  discharge_temp: {high: 80}\n", "high", id="unknown-key"),
    pytest.param("heat_pump:\n  discharge_temp: {lo: 90, hi: 80}\n", "below", id="lo-above-hi"),
    pytest.param("heat_pump: [\n", "limits.yaml", id="not-yaml"),
])
def test_a_bad_limits_file_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LimitsFileError, match=needle):
        load_limits(path)


def _batch(seq: int, rows: np.ndarray, start: int) -> TelemetryBatch:
    return TelemetryBatch(device_id="hp-1", boot_id="b0", seq=seq, product="heat_pump",
                          fields=list(FIELDS),
                          t=(60.0 * np.arange(start, start + rows.shape[0])).tolist(),
                          values=rows.tolist())


def _heat_pump(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    load = 0.5 + 0.3 * np.sin(np.arange(n) * 2 * np.pi / 480) + rng.normal(0, 0.05, n)
    x = np.c_[1.2 + 8.5 * load, 55.0 + 6.0 * load, 2.6 - 0.35 * load]
    x += rng.normal(0, [0.15, 0.5, 0.04], (n, 3))
    return x


def _stream(pipe: CorePipeline, x: np.ndarray) -> list[ScoredBatch | None]:
    return [pipe.process("acme", _batch(seq, x[s:s + 50], s))
            for seq, s in enumerate(range(0, x.shape[0], 50))]


def test_the_pipeline_gives_each_device_its_product_limits() -> None:
    x = _heat_pump(900)
    x[850:, 1] = 95.0  # far beyond the product's limit
    limits = ProductLimits.model_validate({"heat_pump": {"discharge": {"hi": 80.0}}})
    detector = make_detector(DetectorConfig(regression_warmup=600))
    pipe = CorePipeline(detector, EmbeddedStore(":memory:"), limits=limits)
    scored = _stream(pipe, x)
    lo, hi = detector.range.limits(np.array([0, 1, 2]))
    assert hi.tolist() == [np.inf, 80.0, np.inf] and np.isneginf(lo).all()
    last = scored[-1]
    assert last is not None and last.scores[-1, 1] >= 0.9


@pytest.mark.parametrize("hi, forecast", [(80.0, True), (1e12, False)],
                         ids=["limit-crossed", "limit-out-of-reach"])
def test_an_event_forecasts_only_a_limit_within_reach(hi: float, forecast: bool) -> None:
    x = _heat_pump(900)
    x[850:, 1] = 95.0
    limits = ProductLimits.model_validate({"heat_pump": {"discharge": {"hi": hi}}})
    detector = make_detector(DetectorConfig(regression_warmup=600))
    scored = _stream(CorePipeline(detector, EmbeddedStore(":memory:"), limits=limits), x)
    ttls = [e.time_to_limit_s for b in scored if b is not None for e in b.events
            if e.field == "discharge"]
    assert ttls
    if forecast:
        assert all(t is not None and 0.0 <= t <= FORECAST_HORIZON_S for t in ttls)
    else:
        assert all(t is None for t in ttls)
