"""Resolution codes: how an agent says a case ended, checked against the product's categories.

A case resolved by hand needs an outcome: ``confirmed`` (a real fault, with a category from the
product's ``fault_categories`` in the rules files), ``false_alarm`` (with a reason),
``customer_caused`` or ``duplicate``. The outcome is stored as a label with the case's evidence
window (``rules.db.LabelRow``); ``forewarn backtest`` scores rules against those labels and a
false alarm raises the rule's alarm level for the device (``rules.feedback``).

>>> Resolution("confirmed", category="refrigerant_leak").checked(("refrigerant_leak",))
Resolution(outcome='confirmed', category='refrigerant_leak', reason='')
>>> Resolution("confirmed", category="gremlins").checked(("refrigerant_leak",))
Traceback (most recent call last):
...
rules.errors.ResolutionError: fault category 'gremlins' is not one of this product's: ...
>>> Resolution("confirmed").checked(("refrigerant_leak", "other"))
Traceback (most recent call last):
...
rules.errors.ResolutionError: a confirmed fault needs a category: refrigerant_leak, other
>>> Resolution("false_alarm").checked(())
Traceback (most recent call last):
...
rules.errors.ResolutionError: a false alarm needs a reason: sensor, installation, usage, ...
>>> Resolution("false_alarm", reason="sensor").label
'sensor'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from rules.errors import ResolutionError

__all__ = ["FALSE_ALARM_REASONS", "OUTCOMES", "FalseAlarmReason", "Outcome", "Resolution",
           "ResolutionError"]

Outcome = Literal["confirmed", "false_alarm", "customer_caused", "duplicate"]
FalseAlarmReason = Literal["sensor", "installation", "usage", "expected_behaviour", "unknown"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
FALSE_ALARM_REASONS: tuple[str, ...] = get_args(FalseAlarmReason)


@dataclass(frozen=True, slots=True)
class Resolution:
    """An outcome with its category (confirmed) or reason (false alarm)."""

    outcome: str
    category: str = ""
    reason: str = ""

    @property
    def label(self) -> str:
        """What the label stores beside the outcome: the category or the reason ("" else)."""
        return self.category or self.reason

    def checked(self, categories: tuple[str, ...]) -> Resolution:
        """This resolution when it is complete and fits the product's ``categories``."""
        if self.outcome not in OUTCOMES:
            raise ResolutionError(f"outcome {self.outcome!r} is not one of: {', '.join(OUTCOMES)}")
        if self.outcome == "confirmed":
            if not categories:
                raise ResolutionError("this product has no fault categories (add "
                                      "'fault_categories:' to its rules file)")
            if self.category not in categories:
                prefix = (f"fault category {self.category!r} is not one of this product's"
                          if self.category else "a confirmed fault needs a category")
                raise ResolutionError(f"{prefix}: {', '.join(categories)}")
            return Resolution("confirmed", category=self.category)
        if self.outcome == "false_alarm":
            if self.reason not in FALSE_ALARM_REASONS:
                prefix = (f"reason {self.reason!r} is not one of" if self.reason
                          else "a false alarm needs a reason")
                raise ResolutionError(f"{prefix}: {', '.join(FALSE_ALARM_REASONS)}")
            return Resolution("false_alarm", reason=self.reason)
        return Resolution(self.outcome)
