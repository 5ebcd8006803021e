"""``forewarn core`` compares devices with their peers from its ``[peer]`` settings (issue 20).

Core runs as a subprocess against Mosquitto with a rule on the peer detector's events
(``event: {detector: peer}``); eight heat pumps, each at its own level, publish in step, and one
of them jumps away from its peers halfway. The case database must hold that rule's case for that
device alone, and core's ``/metrics`` must count the peer events.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.db import CaseRow, connect
from tests.integration.core_process import CoreProcess, scrape, wait_for
from tests.integration.nats.fleet import SyntheticFleet, publish_mqtt
from tests.servers.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration

PEER_RULE = """\
rules:
  - name: unlike_its_peers
    product: heat_pump
    when: {event: {detector: peer, within: 1h}}
    for: 0s
    severity: info
    notify_customer: false
"""
#: five-minute buckets (30 samples of 10 s), judged five minutes late, six to learn
PEER_TOML = ("[peer]\nbucket_s = 300.0\nlag_s = 300.0\nwarmup = 6\nmin_members = 5\n")


def _cases(path: Path) -> list[tuple[str, str]]:
    engine = connect(f"sqlite:///{path}")
    try:
        with Session(engine) as session:
            return [(r.device_id, r.rule) for r in session.scalars(select(CaseRow))]
    finally:
        engine.dispose()


def test_core_flags_the_device_that_leaves_its_peers(mosquitto: Mosquitto, tmp_path: Path,
                                                     unique_tenant: str) -> None:
    port = free_port()
    core = CoreProcess(tmp_path, mosquitto, unique_tenant,
                       extra_core=f"metrics_port = {port}\n{PEER_TOML}")
    (tmp_path / "rules.yaml").write_text(PEER_RULE)
    core.create_session()
    core.start()
    try:
        wait_for(lambda: scrape(port) is not None, 60, "/metrics to answer", core)
        fleet = SyntheticFleet(unique_tenant, devices=8, batch_samples=30, faulty=1,
                               fault_at=30 * 24, jump=12.0)
        publish_mqtt(mosquitto.host, mosquitto.port, fleet.batches(40))

        def all_in() -> bool:
            now = scrape(port)
            return now is not None and now.get("forewarn_messages_total", 0) == 8 * 40
        wait_for(all_in, 120, "320 messages counted", core)
        wait_for(lambda: bool(_cases(core.cases_db)), 60, "the peer rule's case", core)
        after = scrape(port)
        assert after is not None
        assert core.stop() == 0
    finally:
        core.close()
    assert set(_cases(core.cases_db)) == {("d0000", "unlike_its_peers")}
    assert after["forewarn_peer_events_total"] >= 1
