"""The firmware rollout view's history and rates (``rules.firmware``): moves come from status
messages and from the firmware telemetry batches name; rates count each device's cases in the
windows before and after its move."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.events import DeviceStatus, ScoredBatch
from forewarn.cli import main
from rules.db import AlarmStateRow, CaseRow, FirmwareChangeRow, connect
from rules.evaluate import RuleEvaluator
from rules.firmware import rollout_view
from rules.lifecycle import DeviceBook, DeviceLifecycle

DAY = 86_400.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = connect("sqlite://")
    yield engine
    engine.dispose()


def _batch(device: str, t0: float, firmware: str | None) -> ScoredBatch:
    t = t0 + 60.0 * np.arange(3, dtype=np.float64)
    return ScoredBatch("acme", device, "heat_pump", ("a",), t, np.zeros((3, 1)),
                       np.zeros((3, 1)), firmware=firmware)


def _case(engine: Engine, device: str, at: float) -> None:
    with Session(engine) as session, session.begin():
        session.add(CaseRow(tenant="acme", device_id=device, product="heat_pump", rule="r",
                            severity="warning", status="resolved", group_key="g",
                            customer_id="c", rules="r", fault_started_at=at, opened_at=at,
                            field="a", peak_score=1.0, summary="", evidence_json="{}"))


def test_batches_and_statuses_record_each_move_once(engine: Engine) -> None:
    lifecycle = DeviceLifecycle(DeviceBook(engine), RuleEvaluator(()))
    lifecycle.observe(_batch("hp-1", 0.0, "2.5"))
    lifecycle.observe(_batch("hp-1", 600.0, "2.5"))
    lifecycle.observe(_batch("hp-1", 1200.0, None))          # a batch that does not say
    lifecycle.flush()
    lifecycle.handle(DeviceStatus("acme", "hp-1", "online", 1800.0, firmware="2.5"))
    lifecycle.observe(_batch("hp-1", 5 * DAY, "2.6"))
    lifecycle.flush()
    lifecycle.handle(DeviceStatus("acme", "hp-1", "online", 5 * DAY + 60.0, firmware="2.6"))
    lifecycle.flush()
    # a restarted process does not record what the database already holds
    again = DeviceLifecycle(DeviceBook(engine), RuleEvaluator(()))
    again.observe(_batch("hp-1", 6 * DAY, "2.6"))
    again.flush()
    with Session(engine) as session:
        rows = [(r.firmware, r.previous, r.since) for r in session.scalars(
            select(FirmwareChangeRow).order_by(FirmwareChangeRow.id))]
    assert rows == [("2.5", None, 0.0), ("2.6", "2.5", 5 * DAY)]


def test_rates_count_each_device_s_cases_around_its_move(engine: Engine) -> None:
    lifecycle = DeviceLifecycle(DeviceBook(engine), RuleEvaluator(()))
    for device, moved in (("hp-1", 10 * DAY), ("hp-2", 14 * DAY)):
        lifecycle.observe(_batch(device, 0.0, "2.5"))
        lifecycle.flush()
        lifecycle.observe(_batch(device, moved, "2.6"))
        lifecycle.flush()
    lifecycle.observe(_batch("hp-3", 0.0, "2.5"))             # never moves
    lifecycle.flush()
    for device, at in (("hp-1", 9 * DAY), ("hp-1", 11 * DAY), ("hp-1", 12 * DAY),
                       ("hp-2", 1 * DAY), ("hp-2", 15 * DAY), ("hp-3", 3 * DAY)):
        _case(engine, device, at)
    view = {r.firmware: r for r in rollout_view(engine, "acme", now=20 * DAY, window_s=7 * DAY)}
    new = view["2.6"]
    assert (new.devices, new.moved) == (2, 2)
    # hp-1: [3, 10) d before, [10, 17) after; hp-2: [7, 14) before, [14, 20) after
    assert (new.cases_before, new.device_days_before) == (1, 14.0)
    assert (new.cases_after, new.device_days_after) == (3, 13.0)
    assert new.rate_before == pytest.approx(1000 / 14, abs=0.01)
    assert new.rate_after == pytest.approx(3000 / 13, abs=0.01)
    old = view["2.5"]
    assert (old.devices, old.moved, old.rate_before) == (1, 0, None)
    assert (old.cases_on, old.device_days_on) == (3, 10.0 + 14.0 + 20.0)
    assert rollout_view(engine, "globex", now=20 * DAY) == []


def test_firmware_list_of_a_demo_counts_to_its_newest_sample(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A demo's cases and moves happened in simulated time: ``forewarn firmware list
    --demo-dir`` counts the days on a version up to the demo's newest sample (what the
    console shows for the demo), not up to today; ``--db`` counts up to now."""
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    lifecycle = DeviceLifecycle(DeviceBook(engine), RuleEvaluator(()))
    lifecycle.observe(_batch("hp-1", 0.0, "2.5"))
    lifecycle.flush()
    lifecycle.observe(_batch("hp-1", 10 * DAY, "2.6"))
    lifecycle.flush()
    with Session(engine) as session, session.begin():
        session.add(AlarmStateRow(rule="r", tenant="acme", device_id="hp-1", product="heat_pump",
                                  status="ok", since=0.0, last_seen=20 * DAY))
    engine.dispose()

    def days_on(*where: str) -> dict[str, float]:
        assert main(["firmware", "list", "--json", "--tenant", "acme", *where]) == 0
        shown = json.loads(capsys.readouterr().out)
        return {v["firmware"]: v["device_days_on"] for v in shown["versions"]}

    assert days_on("--demo-dir", str(tmp_path)) == {"2.5": 10.0, "2.6": 10.0}
    assert days_on("--db", f"sqlite:///{tmp_path / 'cases.sqlite'}")["2.6"] > 10_000  # (since 1970)
