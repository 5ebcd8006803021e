"""The service's detection semantics for fleets: a level that holds, explained onsets, firmware.

Through :class:`CorePipeline`, as the services run it: a sustained fault keeps the batch's
scores high (rules hold them for minutes), an isolated wild reading does not, the onset is an
explained :class:`DetectorEvent`, and a firmware update that moves a baseline is no fault.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.detect import DetectorConfig, make_detector
from core.events import ScoredBatch
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from edge.schema import TelemetryBatch
from firmware_sim.calls import CallModel
from firmware_sim.imperfections import Imperfections
from forewarn.settings import load_settings
from forewarn.sim import EvalOptions, run_evaluation

FIELDS = ("current", "discharge", "suction")
WARMUP = 600


def _device(n: int, seed: int) -> np.ndarray:
    """Three fields driven by one daily load, as a heat pump's are, with sensor noise."""
    rng = np.random.default_rng(seed)
    load = 0.5 + 0.3 * np.sin(np.arange(n) * 2 * np.pi / 480) + rng.normal(0, 0.05, n)
    fields: np.ndarray = np.c_[1.2 + 8.5 * load, 55.0 + 6.0 * load, 2.6 - 0.35 * load]
    return fields + rng.normal(0, [0.15, 0.5, 0.04], (n, 3))


def _run(pipe: CorePipeline, x: np.ndarray, firmware: list[str] | None = None,
         batch: int = 30) -> list[ScoredBatch]:
    out: list[ScoredBatch] = []
    for seq, start in enumerate(range(0, x.shape[0], batch)):
        rows = x[start:start + batch]
        fw = None if firmware is None else firmware[start]
        msg = TelemetryBatch(device_id="hp-1", boot_id="b0", seq=seq, product="heat_pump",
                             firmware=fw, fields=list(FIELDS),
                             t=(60.0 * np.arange(start, start + rows.shape[0])).tolist(),
                             values=rows.tolist())
        scored = pipe.process("acme", msg)
        assert scored is not None
        out.append(scored)
    return out


def _pipeline() -> CorePipeline:
    config = DetectorConfig(regression_warmup=WARMUP)
    return CorePipeline(make_detector(config), EmbeddedStore(":memory:"))


def _longest_run(high: np.ndarray) -> int:
    best = run = 0
    for h in high.tolist():
        run = run + 1 if h else 0
        best = max(best, run)
    return best


def test_a_sustained_fault_holds_the_level_and_gives_one_explained_onset() -> None:
    x = _device(1500, seed=1)
    x[1200:, 1] += 6.0  # discharge runs hot for this load
    batches = _run(_pipeline(), x)
    scores = np.vstack([b.scores for b in batches])
    assert scores[:1200].max() < 0.85
    assert _longest_run(scores[1200:, 1] >= 0.85) >= 200
    events = [e for b in batches for e in b.events]
    first = min(events, key=lambda e: e.ts)
    assert first.field == "discharge" and first.detector == "regression"
    assert 1200 * 60.0 <= first.ts < 1215 * 60.0
    assert "discharge" in first.explanation and first.score >= 0.8
    assert sum(e.field == "discharge" for e in events) == 1  # onset only


def test_an_isolated_wild_reading_does_not_hold_the_level() -> None:
    x = _device(1500, seed=2)
    x[1200, 1] = 0.0  # one dropped reading, as a failing connector gives
    scores = np.vstack([b.scores for b in _run(_pipeline(), x)])
    assert _longest_run(scores.max(axis=1) >= 0.85) < 10


def test_a_spiking_sensor_scores_on_its_own_field_only() -> None:
    # a failing connector: the suction reading now and then 60 times too high or zero. The
    # other fields are predicted from it (reading, square, slow averages): before the
    # regression winsorised its slow averages and explained a lone wild field away, each
    # spike held their levels up for minutes to hours
    x = _device(2400, seed=4)
    spikes = np.arange(1200, 2400, 37)
    x[spikes, 2] = np.where(spikes % 2 == 0, x[spikes, 2] * 60.0, 0.0)
    x[spikes[3] + 1, 2] *= 60.0  # two in a row
    scores = np.vstack([b.scores for b in _run(_pipeline(), x)])
    assert scores[spikes, 2].min() >= 0.85
    assert scores[1200:, :2].max() < 0.85


def test_a_fault_that_moves_two_fields_scores_on_both() -> None:
    # the third field (current) reading its prediction from the two would "explain" them:
    # that may hold for the fault's first samples only, then both score as they always did
    x = _device(1800, seed=5)
    x[1200:, 1] += 6.0   # the discharge runs hot ...
    x[1200:, 2] -= 0.4   # ... and the suction pressure low for this load
    scores = np.vstack([b.scores for b in _run(_pipeline(), x)])
    assert _longest_run(scores[1200:, 1] >= 0.85) >= 500
    assert _longest_run(scores[1200:, 2] >= 0.85) >= 150


@pytest.mark.parametrize("announced", [True, False], ids=["firmware-reported", "silent"])
def test_a_firmware_update_that_moves_a_baseline_is_no_fault(announced: bool) -> None:
    x = _device(1800, seed=3)
    x[1200:, 1] += 6.0  # the new control curve runs the discharge hotter
    firmware = ["1.4.2"] * 1200 + ["1.5.0"] * 600 if announced else None
    scores = np.vstack([b.scores for b in _run(_pipeline(), x, firmware)])
    held = _longest_run(scores[1200:].max(axis=1) >= 0.85)
    assert (held < 10) if announced else (held >= 10)


def test_a_small_fleet_through_the_service_code_catches_leaks_before_the_call() -> None:
    options = EvalOptions(
        devices=8, days=4.0, seed=2, products=("heat_pump",), fault_fraction=0.5,
        fault_kinds=("refrigerant_leak", "component_failure"),
        detector=DetectorConfig(), imperfections=Imperfections.none(),
        call_model=CallModel(never_call_fraction=0.0),
    )
    figures = run_evaluation(options).report
    assert figures["faults_causing_calls"] >= 4
    assert figures["notified_before_call"] == figures["faults_causing_calls"]
    assert figures["false_cases"] == 0


def test_the_process_environment_overrides_the_fleet_profile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOREWARN_DETECTOR__REGRESSION_HALF_Z", "6")
    detector = load_settings(None).detector
    assert detector.regression_half_z == 6.0
    assert detector.regression_weight == DetectorConfig().regression_weight


def test_a_checkpoint_without_a_newer_state_array_restores() -> None:
    # snapshots written before the regression kept `far_run` (NATS workers restore them)
    from core.detect.regression import Regression

    x = _device(800, seed=6)
    det = Regression(capacity=3, warmup=WARMUP)
    det.update([0, 1, 2], x[:700])
    old = det.state()
    del old["far_run"]
    restored = Regression.from_state(old, capacity=3, warmup=WARMUP)
    assert not restored.state()["far_run"].any()
    np.testing.assert_array_equal(restored.update([0, 1, 2], x[700:]),
                                  det.update([0, 1, 2], x[700:]))
