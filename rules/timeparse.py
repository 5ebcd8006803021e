"""Durations, daily hours and local time of day, as rules files write them.

>>> parse_duration("10m"), parse_duration(30), parse_duration("1d")
(600.0, 30.0, 86400.0)
>>> quiet = DailyHours.parse("21:00-08:00")
>>> quiet.contains(22 * 60), quiet.contains(12 * 60)
(True, False)
>>> import numpy as np
>>> minutes, weekday = local_clock(np.array([0.0, 9 * 3600.0]), "Asia/Seoul")
>>> minutes.tolist(), weekday.tolist()  # 1970-01-01 was a Thursday (3); Seoul is UTC+9
([540, 1080], [3, 3])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray
from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "WEEKDAYS",
    "DailyHours",
    "Duration",
    "QuietHours",
    "TimeZoneName",
    "local_clock",
    "next_outside",
    "parse_duration",
    "zone",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: weekday names in Python's order (Monday is 0)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def _duration(value: Any) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 2h, 1d)")
    return parse_duration(value)


#: a pydantic field type: seconds, written in YAML as ``90``, ``"90s"``, ``"10m"``…
Duration = Annotated[float, BeforeValidator(_duration)]


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (raises ``ValueError`` for an unknown one)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use e.g. Europe/Berlin, UTC)") from exc


def _zone_name(name: str) -> str:
    zone(name)
    return name


#: a pydantic field type: a time zone name, checked against the tz database
TimeZoneName = Annotated[str, AfterValidator(_zone_name)]


def _quiet_hours(value: str) -> str:
    DailyHours.parse(value)
    return value


@dataclass(frozen=True, slots=True)
class DailyHours:
    """A span of the day in minutes, ``21:00-08:00`` wrapping past midnight."""

    start_min: int
    end_min: int

    @classmethod
    def parse(cls, text: str) -> DailyHours:
        """From ``"HH:MM-HH:MM"``."""
        match = _HOURS.match(text)
        if not match:
            raise ValueError(f"not a span of hours: {text!r} (use e.g. 21:00-08:00)")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ValueError(f"not a time of day in {text!r}")
        return cls(h1 * 60 + m1, h2 * 60 + m2)

    def contains(self, minute: int) -> bool:
        """Whether minute-of-day ``minute`` falls in the span (start included, end not)."""
        return bool(self.mask(np.array([minute]))[0])

    def mask(self, minutes: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Vectorised :meth:`contains`."""
        if self.start_min <= self.end_min:
            out: NDArray[np.bool_] = (minutes >= self.start_min) & (minutes < self.end_min)
        else:
            out = (minutes >= self.start_min) | (minutes < self.end_min)
        return out


def local_clock(t: NDArray[np.float64], tz: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Minute of the day and weekday (Monday 0) of epoch seconds ``t`` in zone ``tz``."""
    info = zone(tz)
    if t.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty

    def offset(ts: float) -> float:
        delta = datetime.fromtimestamp(ts, tz=UTC).astimezone(info).utcoffset()
        return delta.total_seconds() if delta is not None else 0.0

    first, last = offset(float(t[0])), offset(float(t[-1]))
    # the usual case: no DST change inside one batch, one offset for all
    local = t + first if first == last else t + np.array([offset(float(x)) for x in t])
    days = np.floor(local / 86400.0)
    minutes = ((local - days * 86400.0) // 60).astype(np.int64)
    weekday = ((days.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    return minutes, weekday


def next_outside(ts: float, hours: DailyHours, tz: str) -> float:
    """The first moment at or after ``ts`` that is outside ``hours`` in zone ``tz``.

    >>> quiet = DailyHours.parse("21:00-08:00")
    >>> next_outside(22 * 3600.0, quiet, "UTC") / 3600   # 22:00 → 08:00 next day
    32.0
    >>> next_outside(12 * 3600.0, quiet, "UTC") / 3600   # outside already
    12.0
    """
    minutes, _ = local_clock(np.array([ts]), tz)
    minute = int(minutes[0])
    if not hours.contains(minute):
        return ts
    wait_min = (hours.end_min - minute) % 1440
    local_start_of_minute = ts - (ts % 60.0)
    return local_start_of_minute + wait_min * 60.0


#: a pydantic field type: hours of the day written ``21:00-08:00``, checked by
#: :meth:`DailyHours.parse`
QuietHours = Annotated[str, AfterValidator(_quiet_hours)]
