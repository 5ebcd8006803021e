"""A NATS worker judges the lifecycle of its own partitions' devices only: it forgets who of
the others said goodbye or left a last will, and restores them from the devices table when it
takes their partition over (``DeviceLifecycle.forget`` / ``restore``, used by
``forewarn.workers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from core.events import DeviceStatus
from rules.db import connect
from rules.evaluate import AlarmState, RuleEvaluator
from rules.lifecycle import DeviceBook, DeviceLifecycle
from rules.model import parse_rules

_RULES = parse_rules("rules:\n  - name: gone\n    offline: 10s\n  - name: quiet\n"
                     "    no_data: 10s\n", source="t.yaml").rules


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = connect("sqlite://")
    yield engine
    engine.dispose()


def _lifecycle(engine: Engine) -> DeviceLifecycle:
    return DeviceLifecycle(DeviceBook(engine), RuleEvaluator(_RULES))


def test_forget_and_restore_by_owner(engine: Engine) -> None:
    first = _lifecycle(engine)
    first.handle(DeviceStatus("acme", "mine", "offline", 100.0, reason="shutdown"))
    first.handle(DeviceStatus("acme", "theirs", "offline", 100.0, reason="connection_lost"))
    # a second worker starts: it reads both from the table, then drops the one it does not own
    second = _lifecycle(engine)
    evaluator = second.evaluator
    assert set(evaluator.resting) == {("acme", "mine")}
    assert set(evaluator.offline_since) == {("acme", "theirs")}
    assert second.forget(lambda tenant, device_id: device_id == "theirs") == 1
    assert not evaluator.offline_since
    # its tick judges no one else's device: no offline alarm for "theirs"
    assert [t.device_id for t in evaluator.tick(1000.0)] == []
    # it takes the other partition over: the last will is back, and fires
    second.restore(lambda tenant, device_id: device_id == "theirs")
    assert [(t.device_id, t.rule.name) for t in evaluator.tick(1000.0)] == [("theirs", "gone")]


def test_offline_rule_waits_for_the_devices_partition(engine: Engine) -> None:
    lifecycle = _lifecycle(engine)
    lifecycle.handle(DeviceStatus("acme", "hp", "offline", 100.0, reason="connection_lost"))
    evaluator = lifecycle.evaluator
    # its partition is read up to 105 (a "back online" may wait behind): not yet offline 10 s
    assert evaluator.tick(1000.0, device_clock=lambda tenant, device_id: 105.0) == []
    assert evaluator.tick(1000.0, device_clock=lambda tenant, device_id: None) == []
    fired = evaluator.tick(1000.0, device_clock=lambda tenant, device_id: 111.0)
    assert [(t.device_id, t.at) for t in fired] == [("hp", 110.0)]


def test_no_data_verdict_reads_goodbyes_another_worker_wrote(engine: Engine) -> None:
    # the next owner took the partition over before the previous one wrote the goodbye: its
    # memory lacks it, the devices table has it; the verdict asks the table first
    lifecycle = _lifecycle(engine)
    evaluator = lifecycle.evaluator
    evaluator.goodbyes = lifecycle.book.goodbyes
    for device in ("left", "quiet"):
        evaluator.states[("quiet", "acme", device)] = AlarmState(since=100.0)
    _lifecycle(engine).handle(DeviceStatus("acme", "left", "offline", 102.0,
                                           reason="shutdown"))
    assert not evaluator.resting
    fired = evaluator.tick(200.0)
    assert [(t.device_id, t.rule.name) for t in fired] == [("quiet", "quiet")]
    assert evaluator.resting == {("acme", "left"): 102.0}
    # without the table the stale memory would have found both silent
    blind = RuleEvaluator(_RULES)
    for device in ("left", "quiet"):
        blind.states[("quiet", "acme", device)] = AlarmState(since=100.0)
    assert sorted(t.device_id for t in blind.tick(200.0)) == ["left", "quiet"]
