"""/metrics: core's counters read at scrape time, detector time per batch, cases and outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from core.detect import make_detector
from core.pipeline import CorePipeline, LevelDetector
from core.store.embedded import EmbeddedStore
from firmware_sim.fleet import Fleet, FleetConfig
from forewarn.metrics import ForewarnMetrics, TimedDetector
from rules.db import CaseRow, NoticeRow, connect


def _samples(metrics: ForewarnMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_pipeline_counters_and_detector_time(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    with EmbeddedStore(tmp_path / "telemetry.sqlite") as store:
        pipeline = CorePipeline(make_detector(), store)
        metrics = ForewarnMetrics(engine)
        metrics.attach_pipeline(pipeline)
        # the wrapper keeps what the pipeline asks of the detector
        assert isinstance(pipeline.detector, TimedDetector)
        assert isinstance(pipeline.detector, LevelDetector)
        fleet = Fleet(FleetConfig(devices=2, horizon_s=3 * 3600.0, tenant="acme"))
        batches = 0
        for delivery in fleet.deliveries(batch_s=1800.0):
            assert pipeline.process(delivery.tenant, delivery.to_batch()) is not None
            batches += 1
        pipeline.process(delivery.tenant, delivery.to_batch())  # a redelivery: dropped
        pipeline.process_payload("forewarn/v1/acme/hp-0000/telemetry", b"{not json")
        seen = _samples(metrics)
    engine.dispose()
    assert seen[("forewarn_samples_ingested_total", ())] == pipeline.stats.samples_ingested > 0
    assert seen[("forewarn_batches_dropped_total", (("reason", "duplicate"),))] == 1
    dead = {k[1][0][1]: v for k, v in seen.items()
            if k[0] == "forewarn_messages_dead_lettered_total"}
    assert sum(dead.values()) == 1
    assert seen[("forewarn_detector_batch_seconds_count", ())] == batches  # not the duplicate


@pytest.mark.parametrize(("status", "severity", "counted"),
                         [("open", "critical", 1), ("acknowledged", "warning", 1),
                          ("resolved", "warning", 0)], ids=["open", "acknowledged", "resolved"])
def test_open_cases_outbox_and_notice_latency(tmp_path: Path, status: str, severity: str,
                                              counted: int) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    with Session(engine) as session:
        session.add(CaseRow(id=1, tenant="acme", device_id="d", product="p", rule="r",
                            severity=severity, status=status, fault_started_at=0.0,
                            opened_at=0.0, field="f", peak_score=1.0, summary="",
                            evidence_json="{}"))
        for i, (state, sent_after) in enumerate([("sent", 0.3), ("sent", 40.0),
                                                 ("pending", None), ("dead", None)]):
            session.add(NoticeRow(case_id=1, tenant="acme", audience="team", channel="c",
                                  idempotency_key=f"k{i}", subject="s", body="b",
                                  status=state, created_at=100.0,
                                  sent_at=None if sent_after is None else 100.0 + sent_after))
        session.commit()
    seen = _samples(ForewarnMetrics(engine))
    engine.dispose()
    key = ("forewarn_open_cases", (("severity", severity), ("tenant", "acme")))
    assert seen.get(key, 0) == counted
    assert seen[("forewarn_outbox_backlog", ())] == 1
    assert seen[("forewarn_outbox_failed", ())] == 1
    assert seen[("forewarn_notice_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert seen[("forewarn_notice_latency_seconds_bucket", (("le", "60.0"),))] == 2
    assert seen[("forewarn_notice_latency_seconds_count", ())] == 2
