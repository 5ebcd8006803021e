"""rules.feedback: per-device raises add up to the bound, agreeing devices raise the product,
and the evaluator fires at the raised level (issue 20.2)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.events import ScoredBatch
from rules.db import CaseRow, connect
from rules.evaluate import RuleEvaluator
from rules.feedback import FeedbackPolicy, learn_false_alarm, levels
from rules.model import Rule
from rules.registry import CustomerRegistry

POLICY = FeedbackPolicy(step=0.05, max_raise=0.1, expiry_days=1, product_devices=3)


@pytest.fixture
def engine() -> Engine:
    return connect("sqlite://")


def _false_alarm(engine: Engine, device: str, now: float, rules: str = "hot") -> None:
    case = CaseRow(id=abs(hash((device, now))) % 10**9, tenant="acme", device_id=device,
                   product="heat_pump", rule=rules.split(",")[0], rules=rules,
                   fault_started_at=0.0, opened_at=0.0)
    with Session(engine) as session:
        learn_false_alarm(session, case, by="kim", now=now, policy=POLICY)
        session.commit()


def test_three_devices_agreeing_raise_the_product_once(engine: Engine) -> None:
    _false_alarm(engine, "hp-1", 10.0)
    _false_alarm(engine, "hp-2", 20.0)
    assert levels(engine, 30.0).product == {}
    _false_alarm(engine, "hp-3", 30.0)
    _false_alarm(engine, "hp-4", 40.0)  # the product already has its raise: not a second one
    found = levels(engine, 50.0, POLICY.max_raise)
    assert found.product == {("hot", "acme", "heat_pump"): 0.05}
    assert found.raise_for("hot", "acme", "hp-9", "heat_pump") == pytest.approx(0.05)
    assert found.raise_for("hot", "acme", "hp-1", "heat_pump") == pytest.approx(0.1)
    assert found.raise_for("hot", "acme", "hp-1", "water_pump") == pytest.approx(0.05)
    assert levels(engine, 40.0 + 86400.0).product == {}, "it expires"


def test_every_rule_of_the_case_is_raised_never_past_the_bound(engine: Engine) -> None:
    for at in (1.0, 2.0, 3.0, 4.0):
        _false_alarm(engine, "hp-1", at, rules="hot,cold")
    assert levels(engine, 5.0).device == {("hot", "acme", "hp-1"): 0.1,
                                          ("cold", "acme", "hp-1"): 0.1}


@pytest.mark.parametrize(("raise_by", "fires"), [(0.0, True), (0.05, False)],
                         ids=["as-written", "raised"])
def test_the_evaluator_fires_at_the_raised_level(engine: Engine, raise_by: float,
                                                 fires: bool) -> None:
    if raise_by:
        _false_alarm(engine, "hp-1", 0.0)
    evaluator = RuleEvaluator((Rule(name="hot", score_at_least=0.85, **{"for": 120}),))
    evaluator.levels = levels(engine, 10.0)
    scores = np.full((6, 1), 0.88)
    batch = ScoredBatch("acme", "hp-1", "heat_pump", ("a",), np.arange(6) * 60.0,
                        np.ones((6, 1)), scores)
    meta = CustomerRegistry().lookup("acme", "hp-1", "heat_pump")
    kinds = [t.kind for t in evaluator.evaluate(batch, meta)]
    assert ("fired" in kinds) is fires
