"""The demo's simulated customer calls as helpdesk tickets, so ``forewarn report proactivity``
on a demo run reads the same story as the demo's summary.

Each fault whose customer calls within the run becomes a ticket created at the call's time,
through the same code as ``POST /api/v1/helpdesk/events``
(:func:`rules.tickets.record_ticket_event`).
They are posted after the run, so the run itself (and its summary) is what it always was.

>>> from firmware_sim.truth import FaultTruth
>>> from rules.db import connect
>>> engine = connect("sqlite://")
>>> truth = [FaultTruth("hp-1", "heat_pump", "refrigerant_leak", 100.0, 500.0, 900.0),
...          FaultTruth("hp-2", "heat_pump", "refrigerant_leak", 100.0, 500.0, 9e9),
...          FaultTruth("hp-3", "heat_pump", "sensor_drift", 100.0, None, None)]
>>> post_simulated_calls(engine, "acme", truth, until=1000.0)
1
>>> engine.dispose()
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from firmware_sim.truth import FaultTruth
from rules.registry import CustomerRegistry
from rules.tickets import TicketEvent, record_ticket_event

__all__ = ["post_simulated_calls"]


def post_simulated_calls(engine: Engine, tenant: str, truth: Sequence[FaultTruth],
                         until: float, registry: CustomerRegistry | None = None) -> int:
    """Record every call made by ``until`` as a ticket; returns how many."""
    registry = registry or CustomerRegistry()
    posted = 0
    for fault in sorted(truth, key=lambda f: f.call or 0.0):
        if fault.call is None or fault.call > until:
            continue
        customer = registry.lookup(tenant, fault.device_id, fault.product).customer_id
        record_ticket_event(engine, tenant, TicketEvent(
            "created", f"SIM-{fault.device_id}-{int(fault.call)}", customer, fault.device_id,
            f"customer call: {fault.product} {fault.device_id} not working", fault.call),
            now=fault.call)
        posted += 1
    return posted
