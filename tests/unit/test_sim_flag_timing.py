"""The evaluation records a peer flag when a live service would have raised it: its long
batches make the peer detector wait ``batch_s`` + a bucket before it judges a bucket, where the
service waits ``[peer] lag_s`` (docs/incidents.md, "Where the batch's hours go")."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.events import DetectorEvent
from firmware_sim.fleet import Delivery
from forewarn.sim.stream import _SimCaseBook, _SimClock
from rules.db import IncidentFlagRow, IncidentRow, connect
from rules.incidents import IncidentBook, IncidentPolicy
from rules.registry import CustomerRegistry, registry_from_dict

H = 3600.0


def _registry() -> CustomerRegistry:
    batches = ["B17"] * 4 + ["B10", "B11", "B12", "B13"]
    return registry_from_dict({
        "customers": [{"id": f"c{i}"} for i in range(len(batches))],
        "devices": {f"wp-{i}": {"customer": f"c{i}", "product": "water_pump", "batch": b}
                    for i, b in enumerate(batches)}})


def _delivery(device: str, t0: float) -> Delivery:
    """Six hours of minute samples of ``device``, each reaching the server 5 minutes later."""
    t = t0 + 60.0 * np.arange(360, dtype=np.float64)
    return Delivery(tenant="acme", device_id=device, product="water_pump",
                    fields=("vibration",), boot_id="boot0", firmware="2.5.3", seq=0,
                    arrival=float(t[-1]) + 300.0, t=t, values=np.zeros((360, 1)),
                    sample_arrival=np.asarray(t + 300.0, dtype=np.float64))


def _flag(device: str, ts: float) -> DetectorEvent:
    return DetectorEvent("acme", device, "water_pump", "vibration", "peer", ts, 0.9, 2.0,
                         "vibration is unlike its peers")


def test_a_flag_is_recorded_when_a_live_service_would_have_raised_it() -> None:
    """The peer detector here judged buckets 5 h later than a live service would: the flags,
    and the batch's incident three of them open, are timed 5 h sooner than the sample that
    made the bucket due in the evaluation."""
    registry = _registry()
    engine = connect("sqlite://")
    clock = _SimClock(0.0)
    # (the count rule alone: the rate test of a few flags, rules.flag_rate, would open it at two)
    policy = IncidentPolicy(few_flags_dimensions=())
    book = _SimCaseBook(engine, clock, registry, IncidentBook(policy, registry))
    book.peer_wait_s = 5 * H
    for n, device in enumerate(("wp-0", "wp-1", "wp-2")):
        judged = 100 * H + n * H  # the sample that made the bucket due here
        book.delivery = _delivery(device, judged - 3 * H)
        book.record_flag(_flag(device, judged))
    with Session(engine) as session:
        ats = list(session.scalars(select(IncidentFlagRow.at).order_by(IncidentFlagRow.id)))
        incident = session.scalars(select(IncidentRow)).one()
    assert ats == [95 * H, 96 * H, 97 * H]
    assert incident.cohort == "water_pump/batch=B17"
    assert incident.opened_at == 97 * H + 300.0  # the live sample's arrival, not 102 h
    engine.dispose()


def test_without_the_wait_a_flag_keeps_its_sample_s_time() -> None:
    """Batches as short as the service's (``--batch-hours`` with no extra wait): unchanged."""
    registry = _registry()
    engine = connect("sqlite://")
    clock = _SimClock(0.0)
    # (the count rule alone: the rate test of a few flags, rules.flag_rate, would open it at two)
    policy = IncidentPolicy(few_flags_dimensions=())
    book = _SimCaseBook(engine, clock, registry, IncidentBook(policy, registry))
    book.delivery = _delivery("wp-0", 97 * H)
    book.record_flag(_flag("wp-0", 100 * H))
    with Session(engine) as session:
        assert list(session.scalars(select(IncidentFlagRow.at))) == [100 * H]
    assert clock.now == 100 * H + 300.0
    engine.dispose()
