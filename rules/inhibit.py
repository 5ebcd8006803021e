"""The inhibition stage: a rule listed in another's ``inhibited_by`` silences it while active.

The usual use: a device that went offline (a no-data rule) inhibits the sensor rules of that
device, so one "device offline" case stands for it instead of one per sensor.

>>> from rules.evaluate import AlarmState, RuleEvaluator
>>> from rules.model import Rule
>>> offline = Rule(name="offline", no_data=1800)
>>> sensor = Rule(name="sensor", score_at_least=0.9, inhibited_by=("offline",))
>>> ev = RuleEvaluator((offline, sensor))
>>> ev.states[("offline", "acme", "hp-1")] = AlarmState("no_data", 0.0)
>>> Inhibitor(ev).inhibiting(sensor, "acme", "hp-1")
'offline'
"""

from __future__ import annotations

from rules.evaluate import RuleEvaluator
from rules.model import Rule

__all__ = ["Inhibitor"]


class Inhibitor:
    """Answers: is this rule inhibited on this device right now, and by which rule?"""

    def __init__(self, evaluator: RuleEvaluator) -> None:
        self.evaluator = evaluator

    def inhibiting(self, rule: Rule, tenant: str, device_id: str) -> str | None:
        """Name of the active rule that inhibits ``rule`` on the device (None: not inhibited)."""
        for name in rule.inhibited_by:
            if self.evaluator.active((name,), tenant, device_id):
                return name
        return None
