"""How the console writes times and durations: UTC in ISO order, spans in d/h/min.

>>> when(66_000.0), span(90_000.0), span(-120.0), when(None)
('1970-01-01 18:20 UTC', '25 h 0 min', '2 min ago', '–')
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["span", "when"]


def when(ts: float | None) -> str:
    """``ts`` (Unix seconds) as ``YYYY-MM-DD HH:MM UTC``."""
    if ts is None or not math.isfinite(ts):
        return "–"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def span(seconds: float | None) -> str:
    """A duration in words a person reads at a glance; negative: "… ago"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = abs(seconds)
    if s < 3600:
        text = f"{int(s // 60)} min"
    elif s < 2 * 86400:
        text = f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    else:
        text = f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"
    return text if seconds >= 0 else f"{text} ago"
