"""The demo's simulated calls posted as tickets make ``forewarn report proactivity`` agree with
the demo's summary: the faults called about after their case opened, and the lead times."""

from __future__ import annotations

import pytest

from firmware_sim.truth import FaultTruth
from forewarn.report.demo_calls import post_simulated_calls
from forewarn.report.proactivity import proactivity
from forewarn.summary import OpenedCase, summarise
from rules.cases import CaseBook
from rules.db import connect
from rules.evaluate import Alarm
from rules.model import Rule

H = 3600.0
START = 1767225600.0  # the simulator's 2026-01-01
END = START + 96 * H
TRUTH = [
    # forewarned: the case opens 10 h and 30 h before the customers call
    FaultTruth("hp-1", "heat_pump", "refrigerant_leak", START + 30 * H, START + 50 * H,
               START + 60 * H),
    FaultTruth("hp-2", "heat_pump", "refrigerant_leak", START + 20 * H, START + 60 * H,
               START + 70 * H),
    # missed: the call comes before any case
    FaultTruth("hp-3", "heat_pump", "compressor_wear", START + 40 * H, START + 44 * H,
               START + 45 * H),
    # never calls; and a call after the run (not happened yet)
    FaultTruth("hp-4", "heat_pump", "sensor_drift", START + 40 * H, None, None),
    FaultTruth("hp-5", "heat_pump", "refrigerant_leak", START + 80 * H, START + 95 * H,
               START + 120 * H),
]
OPENED = {"hp-1": START + 50 * H, "hp-2": START + 40 * H, "hp-3": START + 47 * H,
          "hp-5": START + 90 * H}


def test_the_report_on_posted_calls_agrees_with_the_summary() -> None:
    engine = connect("sqlite://")
    book = CaseBook(engine)
    opened = []
    for device, at in sorted(OPENED.items(), key=lambda kv: kv[1]):
        book.clock = lambda at=at: at
        outcome = book.record_alarm(Alarm(Rule(name="leak", score_at_least=0.8), "acme",
                                          device, "heat_pump", at - 600.0, at, "t", 0.9, 1.0))
        assert outcome.case_id is not None
        opened.append(OpenedCase(outcome.case_id, device, "leak", at))
    summary = summarise(TRUTH, opened, devices=5, published=0, ingested=0, duplicates=0,
                        notices_sent=0, dead_letters=0)
    assert post_simulated_calls(engine, "acme", TRUTH, until=END) == 3
    report = proactivity(engine, since_s=30 * 86400.0, until=END)
    engine.dispose()
    assert report["tickets"] == 3
    # the summary also counts hp-5, whose customer calls after the run (the simulator knows
    # the future; tickets do not): the two agree on the calls made during the run
    calls = {t.device_id: t.call for t in TRUTH}
    before_call = {o.device_id for o in summary.cases
                   if o.lead_time_s is not None and o.lead_time_s > 0}
    assert summary.faults_notified_before_call == 3
    during_run = {d for d in before_call if (calls[d] or 0.0) <= END}
    assert report["forewarned"] == len(during_run) == 2
    assert report["missed"] == 1
    # the summary also judges the case opened after hp-3's call (negative lead); tickets
    # count only the leads of cases that came first
    assert sorted(o.lead_time_s for o in summary.cases if o.device_id in during_run
                  and o.lead_time_s is not None) == pytest.approx([10 * H, 30 * H])
    assert report["lead_time_s"]["median"] == pytest.approx(20 * H)
    assert report["cases_without_ticket"] == 1  # hp-5: its call comes after the run
