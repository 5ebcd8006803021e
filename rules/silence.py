"""The silencing stage: alarms inside a silence or maintenance window open no case.

Windows come from the rules file (``silences:``) and can be added at run time.

>>> from rules.model import Silence
>>> from rules.registry import DeviceMeta
>>> nightly = Silence(name="nightly_service", products=("heat_pump",), hours="02:00-04:00",
...                   timezone="UTC")
>>> meta = DeviceMeta("acme", "hp-1", "heat_pump", "kim")
>>> silencer = Silencer((nightly,))
>>> silencer.match("any_rule", meta, 3 * 3600.0).name, silencer.match("any_rule", meta, 0.0)
('nightly_service', None)
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.model import Silence
from rules.registry import DeviceMeta

__all__ = ["Silencer"]


class Silencer:
    """Finds the window, if any, that silences an alarm."""

    def __init__(self, windows: Iterable[Silence] = ()) -> None:
        self.windows: list[Silence] = list(windows)

    def add(self, window: Silence) -> None:
        """Silence something from now on (e.g. the team's ``forewarn`` action)."""
        self.windows.append(window)

    def match(self, rule: str, meta: DeviceMeta, ts: float) -> Silence | None:
        """The first window covering ``rule`` on the device at ``ts``."""
        return next((w for w in self.windows if w.covers(rule, meta, ts)), None)
