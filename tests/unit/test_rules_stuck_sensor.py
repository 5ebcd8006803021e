"""The shipped stuck-sensor rules keep inhibiting the circuit rules through a restart.

The stuck detector's event comes once, when a reading freezes, and the rules engine keeps
detector events in memory only. The alarm's own state (firing, then recovering for a week) is
in the case database, so a restarted service — or a NATS worker that took the device over —
must still hold back the rules that a frozen reading misleads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.events import DetectorEvent, ScoredBatch
from rules.db import connect
from rules.evaluate import RuleEvaluator
from rules.model import load_rules
from rules.registry import DeviceMeta
from rules.states import StateStore

RULES = Path(__file__).resolve().parents[2] / "config" / "rules"
DAY = 86_400.0


def _batch(product: str, fields: tuple[str, ...], t0: float, n: int, stuck: str | None = None,
           score: float = 0.1) -> ScoredBatch:
    t = t0 + 60.0 * np.arange(n, dtype=np.float64)
    events = () if stuck is None else (DetectorEvent(
        "acme", "d-1", product, stuck, "stuck", t0, 0.9, 1.0, f"{stuck} stuck at one value"),)
    return ScoredBatch("acme", "d-1", product, fields, t, np.ones((n, len(fields))),
                       np.full((n, len(fields)), score), events)


@pytest.mark.parametrize(("product", "stuck", "inhibited"), [
    pytest.param("heat_pump", "outdoor_temp", "heat_pump_refrigerant_circuit", id="heat-pump"),
    pytest.param("water_pump", "pressure", "water_pump_hydraulics", id="water-pump"),
])
def test_the_inhibition_survives_a_restart(product: str, stuck: str, inhibited: str) -> None:
    ruleset = load_rules(RULES / f"{product}.yaml")
    fields = tuple(sorted({f for r in ruleset.rules for f in (r.fields or ())}))
    meta = DeviceMeta("acme", "d-1", product, "kim")
    engine = connect("sqlite://")
    store = StateStore(engine)
    before = RuleEvaluator(ruleset.rules)
    before.evaluate(_batch(product, fields, 0.0, 10, stuck=stuck), meta)
    assert before.active((f"{product}_sensor_stuck",), "acme", "d-1")
    store.save(before.take_dirty())
    # the service restarts three days later; detector events are gone with the process
    after = RuleEvaluator(ruleset.rules, store.load())
    after.evaluate(_batch(product, fields, 3 * DAY, 180), meta)  # three hours of data
    assert after.active((f"{product}_sensor_stuck",), "acme", "d-1")
    rule = next(r for r in ruleset.rules if r.name == inhibited)
    assert f"{product}_sensor_stuck" in rule.inhibited_by
    # a week after the condition was last seen clear (day 3 here), the inhibition ends
    after.evaluate(_batch(product, fields, 10.1 * DAY, 60), meta)
    assert not after.active((f"{product}_sensor_stuck",), "acme", "d-1")
    engine.dispose()
