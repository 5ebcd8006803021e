"""Table-driven tests of every rule feature: conditions, `for`, hysteresis, resolve, no data,
flapping, device metadata and time of day, and the files and errors around them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.events import DetectorEvent, ScoredBatch
from rules.errors import RuleFileError
from rules.evaluate import RuleEvaluator
from rules.model import Rule, load_rules, parse_rules
from rules.registry import DeviceMeta, load_registry, parse_registry

ROOT = Path(__file__).resolve().parents[2]
STEP = 60.0


def make_batch(scores: list[Any], t0: float = 0.0, fields: tuple[str, ...] = ("a",),
               values: list[Any] | None = None, events: tuple[DetectorEvent, ...] = (),
               device: str = "hp-1") -> ScoredBatch:
    s = np.array(scores, dtype=float).reshape(len(scores), len(fields))
    v = (np.array(values, dtype=float).reshape(s.shape) if values is not None
         else np.ones_like(s))
    t = t0 + np.arange(len(scores), dtype=np.float64) * STEP
    return ScoredBatch("acme", device, "heat_pump", fields, t, v, s, events)


def event(ts: float, field: str = "a", detector: str = "trend", score: float = 0.9,
          ttl: float | None = None) -> DetectorEvent:
    return DetectorEvent("acme", "hp-1", "heat_pump", field, detector, ts, score, 1.0,
                         "rising", ttl)


def run(rule: dict[str, Any], batches: list[ScoredBatch],
        meta: DeviceMeta | None = None) -> list[tuple[str, float]]:
    ev = RuleEvaluator((Rule.model_validate({"name": "r", **rule}),))
    meta = meta or DeviceMeta("acme", "hp-1", "heat_pump", "kim")
    return [(t.kind, t.at) for b in batches for t in ev.evaluate(b, meta)]


HIGH, LOW = 0.9, 0.1

CASES = [
    pytest.param({"score_at_least": 0.8, "for": 120}, [make_batch([LOW, HIGH, HIGH, HIGH])],
                 [("fired", 180.0)], id="for-held-fires"),
    pytest.param({"score_at_least": 0.8, "for": 180}, [make_batch([HIGH, HIGH, LOW, HIGH])],
                 [], id="for-not-held-no-alarm"),
    pytest.param({"score_at_least": 0.8, "for": 60},
                 [make_batch([HIGH, HIGH]), make_batch([HIGH], t0=120.0)],
                 [("fired", 60.0)], id="for-across-batches-fires-once"),
    pytest.param({"score_at_least": 0.8, "for": 0, "resolve_after": 120},
                 [make_batch([HIGH, LOW, LOW, LOW])],
                 [("fired", 0.0), ("recovering", 60.0), ("resolved", 180.0)],
                 id="resolve-after-recovery"),
    pytest.param({"score_at_least": 0.8, "for": 0, "resolve_after": 120},
                 [make_batch([HIGH, LOW, HIGH, LOW, LOW])],
                 [("fired", 0.0), ("recovering", 60.0), ("refired", 120.0),
                  ("recovering", 180.0)], id="recovering-interrupted-refires"),
    pytest.param({"score_at_least": 0.8, "for": 0, "resolve_after": 60,
                  "clear": {"not": {"score": {"at_least": 0.5}}}},
                 [make_batch([HIGH, 0.6, 0.6, 0.3, 0.3])],
                 [("fired", 0.0), ("recovering", 180.0), ("resolved", 240.0)],
                 id="hysteresis-band-stays-firing"),
    pytest.param({"score_at_least": 0.8, "for": 0, "resolve_after": 0,
                  "flapping": {"fires": 2, "within": 3600}},
                 [make_batch([HIGH, LOW, HIGH, LOW, LOW])],
                 [("fired", 0.0), ("recovering", 60.0), ("resolved", 60.0), ("flapping", 120.0),
                  ("fired", 120.0), ("recovering", 180.0)],
                 id="flapping-holds-resolution"),
    pytest.param({"score_at_least": 0.8, "for": 0, "resolve_after": 0},
                 [make_batch([HIGH, LOW, HIGH, LOW])],
                 [("fired", 0.0), ("recovering", 60.0), ("resolved", 60.0), ("fired", 120.0),
                  ("recovering", 180.0), ("resolved", 180.0)],
                 id="no-flapping-config-resolves-each-time"),
    pytest.param({"score_at_least": 0.8, "fields": ["b"], "for": 0},
                 [make_batch([[HIGH, LOW]], fields=("a", "b"))], [],
                 id="fields-limit-the-score"),
    pytest.param({"when": {"score": {"at_least": 0.8, "count": 2}}, "for": 0},
                 [make_batch([[HIGH, LOW], [HIGH, HIGH]], fields=("a", "b"))],
                 [("fired", 60.0)], id="score-on-two-fields-at-once"),
    pytest.param({"when": {"value": {"field": "a", "above": 80}}, "for": 60},
                 [make_batch([LOW, LOW, LOW], values=[85, 90, float("nan")])],
                 [("fired", 60.0), ("recovering", 120.0)], id="raw-value-above-nan-clears"),
    pytest.param({"when": {"value": {"field": "a", "above": 80, "below": 10}}, "for": 0},
                 [make_batch([LOW, LOW, LOW], values=[50, 5, 50])],
                 [("fired", 60.0), ("recovering", 120.0)], id="raw-value-outside-band"),
    pytest.param({"when": {"event": {"detector": "trend", "within": 120}}, "for": 0},
                 [make_batch([LOW] * 5, events=(event(60.0),))],
                 [("fired", 60.0), ("recovering", 240.0)], id="event-within-window"),
    pytest.param({"when": {"event": {"detector": ["spike"]}}, "for": 0},
                 [make_batch([LOW] * 2, events=(event(0.0),))], [],
                 id="event-of-other-detector-kind"),
    pytest.param({"when": {"event": {"time_to_limit_below": "1h"}}, "for": 0},
                 [make_batch([LOW], events=(event(0.0, ttl=7200.0),)),
                  make_batch([LOW], t0=60.0, events=(event(60.0, ttl=1800.0),))],
                 [("fired", 60.0)], id="event-predicted-failure-soon"),
    # an event-only batch (no samples: a peer bucket judged between the device's batches on
    # the scale-out engine) fires nothing itself; its event covers the next batch's samples
    pytest.param({"when": {"event": {"detector": "peer", "within": 600}}, "for": 0},
                 [make_batch([], events=(event(90.0, detector="peer"),)),
                  make_batch([LOW] * 2, t0=120.0)],
                 [("fired", 120.0)], id="event-only-batch-remembered"),
    pytest.param({"when": {"all": [{"score": {"at_least": 0.8}},
                                   {"device": {"firmware": "2.*", "tier": "premium"}}]},
                  "for": 0},
                 [make_batch([HIGH])], [], id="device-metadata-excludes"),
    pytest.param({"when": {"any": [{"score": {"at_least": 0.8}},
                                   {"device": {"customer": "kim"}}]}, "for": 0},
                 [make_batch([LOW])], [("fired", 0.0)], id="device-customer-matches"),
    pytest.param({"when": {"all": [{"score": {"at_least": 0.8}},
                                   {"time": {"hours": "09:00-10:00"}}]}, "for": 0},
                 [make_batch([HIGH] * 3, t0=9 * 3600.0 - 60.0)], [("fired", 32400.0)],
                 id="time-of-day-utc-device"),
    pytest.param({"when": {"all": [{"score": {"at_least": 0.8}},
                                   {"time": {"weekdays": ["sat", "sun"]}}]}, "for": 0},
                 [make_batch([HIGH])], [], id="weekday-thursday-excluded"),
    pytest.param({"no_data": 600}, [make_batch([LOW]), make_batch([LOW], t0=3600.0)],
                 [("no_data", 600.0), ("resolved", 3600.0)], id="no-data-gap-seen-late"),
]


@pytest.mark.parametrize(("rule", "batches", "expected"), CASES)
def test_rule_feature(rule: dict[str, Any], batches: list[ScoredBatch],
                      expected: list[tuple[str, float]]) -> None:
    assert run(rule, batches) == expected


def test_time_of_day_in_the_devices_own_zone() -> None:
    rule = {"when": {"all": [{"score": {"at_least": 0.8}}, {"time": {"hours": "18:00-19:00"}}]},
            "for": 0}
    seoul = DeviceMeta("acme", "hp-1", "heat_pump", "kim", timezone="Asia/Seoul")
    # 09:00 UTC is 18:00 in Seoul
    assert run(rule, [make_batch([HIGH], t0=9 * 3600.0)], seoul) == [("fired", 32400.0)]
    assert run(rule, [make_batch([HIGH], t0=9 * 3600.0)]) == []


def test_firing_alarm_carries_evidence_and_forecast() -> None:
    ev = RuleEvaluator((Rule(name="r", score_at_least=0.8, **{"for": 0}),))
    b = make_batch([[0.2, 0.1], [0.95, 0.7]], fields=("a", "b"), values=[[1, 2], [3, 4]],
                   events=(event(30.0, ttl=3600.0),))
    [fired] = ev.evaluate(b, DeviceMeta("acme", "hp-1", "heat_pump", "kim"))
    alarm = fired.alarm
    assert alarm is not None
    assert (alarm.field, alarm.fields, alarm.value) == ("a", ("a", "b"), 3.0)
    assert alarm.around == ((0.0, 1.0), (60.0, 3.0))
    assert alarm.predicted_failure_at == 3630.0
    assert [e.ts for e in alarm.events] == [30.0]


def test_no_data_tick_fires_and_data_back_resolves() -> None:
    offline = Rule(name="offline", no_data=600)
    ev = RuleEvaluator((offline,))
    meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
    ev.evaluate(make_batch([LOW]), meta)
    assert ev.tick(300.0) == []
    [silent] = ev.tick(700.0)
    assert (silent.kind, silent.at, silent.alarm is not None) == ("no_data", 600.0, True)
    assert ev.tick(900.0) == []  # once
    [back] = ev.evaluate(make_batch([LOW], t0=1000.0), meta)
    assert back.kind == "resolved"


def test_device_clock_holds_back_only_the_lagging_devices() -> None:
    """Per-partition ticks (NATS): a device is judged against how far its own telemetry was
    read, so a lagging partition keeps only its devices from looking silent."""
    ev = RuleEvaluator((Rule(name="offline", no_data=600),))
    for device in ("hp-1", "hp-2", "hp-3"):
        ev.evaluate(make_batch([LOW], device=device), DeviceMeta("acme", device, "heat_pump",
                                                                  "kim"))
    read_until = {"hp-1": 5000.0, "hp-2": 200.0, "hp-3": None}  # hp-2 lags, hp-3 unknown
    fired = ev.tick(5000.0, device_clock=lambda _tenant, device: read_until[device])
    assert [(t.device_id, t.kind) for t in fired] == [("hp-1", "no_data")]
    read_until["hp-2"] = 5000.0
    assert [t.device_id for t in ev.tick(5000.0, device_clock=lambda _t, d: read_until[d])] \
        == ["hp-2"]


def test_late_batch_does_not_make_a_talking_device_silent() -> None:
    ev = RuleEvaluator((Rule(name="offline", no_data=600),))
    meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
    ev.evaluate(make_batch([LOW], t0=1000.0), meta)
    ev.evaluate(make_batch([LOW], t0=100.0), meta)  # out of order: an older batch arrives late
    assert ev.tick(1300.0) == []


def test_never_reported_device_is_no_data() -> None:
    ev = RuleEvaluator((Rule(name="offline", no_data=600),))
    [silent] = ev.tick(1000.0, {"hp-9": 0.0, "hp-8": None}, tenant="acme")
    assert (silent.device_id, silent.at) == ("hp-9", 600.0)


def test_condition_rule_no_data_returns_to_its_state() -> None:
    ev = RuleEvaluator((Rule(name="r", score_at_least=0.8, no_data=600, **{"for": 0}),))
    meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
    ev.evaluate(make_batch([HIGH]), meta)
    [silent] = ev.tick(1000.0)
    assert silent.kind == "no_data" and silent.alarm is None
    kinds = [t.kind for t in ev.evaluate(make_batch([HIGH], t0=2000.0), meta)]
    assert kinds == ["data_back"] and ev.status("r", "acme", "hp-1") == "firing"


@pytest.mark.parametrize("path", sorted((ROOT / "config/rules").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_rules_files_load(path: Path) -> None:
    assert load_rules(path).rules


def test_example_customer_registry_loads() -> None:
    registry = load_registry(ROOT / "config/customers.example.yaml")
    meta = registry.lookup("acme", "hp-0001", "heat_pump")
    assert (meta.language, meta.timezone, meta.quiet_hours) == ("ko", "Asia/Seoul",
                                                                "21:00-08:00")
    unknown = registry.lookup("acme", "hp-7777", "heat_pump")
    assert (unknown.customer_id, unknown.language, unknown.known) == ("acme/hp-7777", "en",
                                                                      False)


BAD = [
    pytest.param("rules:\n  - name: x\n    scor_at_least: 0.8\n",
                 "bad.yaml, line 3: rules.0.scor_at_least: Extra inputs", id="typo-key"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\n    for: soon\n",
                 "bad.yaml, line 4: rules.0.for", id="bad-duration"),
    pytest.param("rules:\n  - name: x\n    when:\n      score: {at_lest: 0.8}\n",
                 "bad.yaml, line 4: rules.0.when.score.at_lest: Extra inputs",
                 id="typo-inside-condition"),
    pytest.param("rules:\n  - name: x\n    when: {score: {at_least: 0.8}, value: "
                 "{field: a, above: 1}}\n", "exactly one of", id="two-conditions-in-a-node"),
    pytest.param("rules:\n  - name: x\n    description: nothing\n",
                 "needs 'score_at_least', 'when', 'no_data' or 'offline'", id="no-condition"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\n    inhibited_by: [y]\n",
                 "inhibited_by unknown rules: y", id="inhibited-by-unknown"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\nsilences:\n  - name: s\n"
                 "    hours: '25:00-26:00'\n", "bad.yaml, line 5: silences.0", id="bad-hours"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\nsilences:\n  - name: s\n"
                 "    start: 2026-01-01T00:00:00\n    end: 2026-01-02T00:00:00\n",
                 "with a zone", id="window-without-zone"),
    pytest.param("rules:\n  - name: x\n    score_at_least: 0.8\ncases:\n  quiet_hourz: x\n",
                 "bad.yaml, line 5: cases.quiet_hourz", id="typo-in-policy"),
    pytest.param("rules: [", "not valid YAML", id="broken-yaml"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_rule_file_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, source="bad.yaml")
    assert message in str(caught.value)


def test_registry_errors_name_the_line() -> None:
    text = yaml.safe_dump({"customers": [{"id": "a", "timezone": "Mars/Olympus"}]})
    with pytest.raises(RuleFileError, match=r"c.yaml, line 3: customers.0.timezone"):
        parse_registry(text, source="c.yaml")
    with pytest.raises(RuleFileError, match="unknown customers: b"):
        parse_registry("devices:\n  d1: {customer: b}\n", source="c.yaml")
