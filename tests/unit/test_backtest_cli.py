"""``forewarn backtest`` (issue 20.3): telemetry stored in the embedded store is replayed through
the current and the proposed rules and scored against the agents' labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.events import ScoredBatch
from core.store.embedded import EmbeddedStore
from forewarn import cli
from rules import case_actions
from rules.cases import CaseBook
from rules.db import connect
from rules.model import parse_rules
from rules.pipeline import RulesPipeline
from rules.resolution import Resolution

RULE = """
rules:
  - name: hot
    product: heat_pump
    score_at_least: {level}
    for: 10m
    resolve_after: 10m
"""
T0 = 1_767_225_600.0  # 2026-01-01


def _batch(device: str, start: float, scores: list[float]) -> ScoredBatch:
    n = len(scores)
    t = start + np.arange(n, dtype=np.float64) * 60.0
    return ScoredBatch("acme", device, "heat_pump", ("discharge_temp",), t,
                       np.full((n, 1), 50.0), np.array(scores)[:, None])


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A day of two heat pumps: hp-leak with a strong anomaly (confirmed by an agent), hp-sun
    with a mild one (resolved as a false alarm), as the service stored and judged them."""
    store = EmbeddedStore(tmp_path / "telemetry.sqlite")
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    clock = [T0]
    pipeline = RulesPipeline(parse_rules(RULE.format(level=0.85)),
                             CaseBook(engine, clock=lambda: clock[0]))
    quiet = [0.1] * 120
    shapes = {"hp-leak": [0.1] * 60 + [0.97] * 60, "hp-sun": [0.1] * 60 + [0.88] * 60}
    resolutions = {"hp-leak": Resolution("confirmed", category="leak"),
                   "hp-sun": Resolution("false_alarm", reason="installation")}
    for k in range(3):
        for device, shape in shapes.items():
            batch = _batch(device, T0 + k * 7200.0, shape if k == 1 else quiet)
            store.write(batch)
            clock[0] = float(batch.t[-1])
            pipeline.handle(batch)
        if k == 1:  # the agent resolves both while they are open
            opened = {c.device_id: c.id for c in pipeline.opened}
            assert set(opened) == set(shapes)
            for device, resolution in resolutions.items():
                case_actions.resolve(engine, "acme", opened[device], by="kim", comment="",
                                     now=clock[0], resolution=resolution,
                                     categories=("leak",))
    store.close()
    engine.dispose()
    (tmp_path / "forewarn.toml").write_text(
        f'[store]\npath = "{tmp_path / "telemetry.sqlite"}"\n'
        f'[cases]\nurl = "sqlite:///{tmp_path / "cases.sqlite"}"\n'
        f'[rules]\nfiles = ["{tmp_path / "current.yaml"}"]\n', encoding="utf-8")
    (tmp_path / "current.yaml").write_text(RULE.format(level=0.85), encoding="utf-8")
    (tmp_path / "proposed").mkdir()
    (tmp_path / "proposed" / "rules.yaml").write_text(RULE.format(level=0.95),
                                                      encoding="utf-8")
    return tmp_path


def test_a_stricter_threshold_drops_the_false_alarm_and_keeps_the_confirmed_fault(
        history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(history / "forewarn.toml"), "backtest", "--rules",
                     str(history / "proposed"), "--since", "90d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["devices"], report["labels"]) == (2, 2)
    current, proposed = report["current"], report["proposed"]
    assert (current["cases"], proposed["cases"]) == (2, 1)
    assert (current["precision"], proposed["precision"]) == (0.5, 1.0)
    assert current["recall"] == proposed["recall"] == 1.0
    assert proposed["lead_time_median_s"] > 0
    assert [c["device_id"] for c in report["changes"]["close"]] == ["hp-sun"]
    assert report["changes"]["open"] == []
    assert report["changes"]["move"] == []  # the real fault crosses both levels at once


def test_the_table_and_bad_input(history: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ["--config", str(history / "forewarn.toml"), "backtest"]
    assert cli.main([*config, "--rules", str(history / "proposed")]) == 0
    out = capsys.readouterr().out
    assert "precision (confirmed / labelled)" in out and "would no longer open: acme/hp-sun" in out
    assert cli.main([*config, "--rules", str(history / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert cli.main([*config, "--rules", str(history / "proposed"), "--since", "soon"]) == 2
    assert "--since soon" in capsys.readouterr().err
