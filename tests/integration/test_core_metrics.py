"""``forewarn core`` serves Prometheus ``/metrics`` on ``[core] metrics_port``.

Core runs as a subprocess against Mosquitto; the test scrapes it before and after publishing
telemetry and one message that cannot be decoded, and checks that the figures moved by what
was published: messages and samples in, dead letters by reason, detector time per batch,
store write latency, and the outbox (backlog, age of the oldest pending notice).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.core_process import CoreProcess, scrape, wait_for
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration


def test_core_metrics_move_with_what_is_published(mosquitto: Mosquitto, tmp_path: Path,
                                                  unique_tenant: str) -> None:
    port = free_port()
    core = CoreProcess(tmp_path, mosquitto, unique_tenant,
                       extra_core=f"metrics_port = {port}\n")
    core.create_session()
    core.start()
    try:
        wait_for(lambda: scrape(port) is not None, 60, "/metrics to answer", core)
        before = scrape(port)
        assert before is not None
        fleet = SyntheticFleet(unique_tenant, devices=3, batch_samples=20)
        batches = list(fleet.batches(4))
        poison = (f"forewarn/v1/{unique_tenant}/d0000/telemetry", b"{not json", 0)
        publish_mqtt(mosquitto.host, mosquitto.port, [*batches, poison])

        def seen_all() -> bool:
            now = scrape(port)
            return now is not None and now.get("forewarn_messages_total", 0) == 13
        wait_for(seen_all, 60, "13 messages counted", core)
        after = scrape(port)
        assert after is not None
        assert core.stop() == 0
    finally:
        core.close()

    assert before.get("forewarn_messages_total") == 0
    assert after["forewarn_samples_ingested_total"] - before["forewarn_samples_ingested_total"] \
        == 12 * 20
    dead = {k: v for k, v in after.items()
            if k.startswith("forewarn_messages_dead_lettered_total{reason=")}
    assert list(dead.values()) == [1], dead  # the poison message, under its reason
    assert after["forewarn_detector_batch_seconds_count"] == 12
    assert after["forewarn_store_write_seconds_count"] == 12
    assert after["forewarn_store_write_seconds_sum"] > 0
    assert after["forewarn_outbox_backlog"] >= 0
    assert after["forewarn_outbox_oldest_pending_age_seconds"] >= 0
