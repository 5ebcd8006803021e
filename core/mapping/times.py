"""A reading's time as epoch seconds, from a number in a unit or an ISO 8601 string.

>>> [epoch_seconds(v, "auto") for v in (1_700_000_000, 1_700_000_000_500, "2023-11-14T22:13:20Z")]
[1700000000.0, 1700000000.5, 1700000000.0]
>>> epoch_seconds("yesterday", "auto")
Traceback (most recent call last):
...
ValueError: time 'yesterday' is not ISO 8601
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from edge.schema import MAX_TIMESTAMP_S

__all__ = ["AUTO_MS_ABOVE", "epoch_seconds"]

#: an epoch number above this under ``auto`` is milliseconds (1e11 s is the year 5138)
AUTO_MS_ABOVE = 1e11
_DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def epoch_seconds(value: object, unit: str) -> float:
    """Epoch seconds of ``value`` written in ``unit``; ValueError saying why not."""
    if isinstance(value, str):
        if unit not in ("auto", "iso"):
            raise ValueError(f"time {value[:40]!r} is text, the mapping says {unit}")
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"time {value[:40]!r} is not ISO 8601") from None
        if when.tzinfo is None:  # a device that does not say its zone: UTC
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if unit == "iso":
            raise ValueError(f"time {value!r} is a number, the mapping says iso")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if unit == "auto":
            seconds = number / 1e3 if abs(number) > AUTO_MS_ABOVE else number
        else:
            seconds = number / _DIVISOR[unit]
    else:
        raise ValueError(f"time {value!r} is neither a number nor ISO 8601 text")
    if not math.isfinite(seconds) or not 0.0 <= seconds <= MAX_TIMESTAMP_S:
        raise ValueError(f"time {value!r} is out of range (1970 to 2200)")
    return seconds
