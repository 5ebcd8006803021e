"""Back-pressure on the ingest bridge: when to stop taking telemetry, and what each device lost.

:class:`FillGate` turns the stream's fill level into a decision with hysteresis: it closes at
``high_water`` and opens again only below ``low_water``, so a stream hovering at the mark does
not flap; each closed stretch is one *episode*, reported once when it starts and once when it
ends. :class:`DeviceLedger` counts, per device, what the bridge forwarded and how many batches
are missing from a device's sequence when they reach the bridge (discarded before anyone read
them, e.g. by a broker queue that overflowed): the per-device report of loss.

>>> now = [0.0]
>>> gate = FillGate(high_water=0.8, low_water=0.6, clock=lambda: now[0])
>>> gate.observe(0.5), gate.observe(0.85), gate.observe(0.7), gate.is_open
(None, 'started', None, False)
>>> now[0] = 30.0
>>> gate.observe(0.55), gate.is_open, gate.episodes, gate.paused_s()
('ended', True, 1, 30.0)
>>> ledger = DeviceLedger()
>>> for seq in (0, 1, 4, 5):
...     ledger.forwarded("acme", "hp-1", "boot-a", seq)
>>> ledger.forwarded("acme", "hp-1", "boot-b", 0)   # a reboot starts a new sequence
>>> ledger.devices[("acme", "hp-1")]
DeviceCounts(forwarded=5, gaps=2)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DeviceCounts", "DeviceLedger", "FillGate"]


class FillGate:
    """Open below ``low_water``, closed from ``high_water`` on, unchanged in between."""

    def __init__(self, high_water: float, low_water: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0.0 <= low_water < high_water:
            raise ValueError(f"low_water {low_water} must lie in [0, high_water {high_water})")
        self.high_water = high_water
        self.low_water = low_water
        self.clock = clock
        self.is_open = True
        #: the last fill level observed (share of the stream's limit)
        self.fill = 0.0
        #: closed stretches so far (one alert and one notice each)
        self.episodes = 0
        #: how long the last finished episode lasted
        self.last_episode_s = 0.0
        self._closed_at: float | None = None
        self._paused_s = 0.0

    def observe(self, fill: float) -> Literal["started", "ended"] | None:
        """Take a fill level; return "started"/"ended" when an episode starts or ends."""
        self.fill = fill
        if self.is_open and fill >= self.high_water:
            self.is_open = False
            self.episodes += 1
            self._closed_at = self.clock()
            return "started"
        if not self.is_open and fill < self.low_water:
            self.is_open = True
            if self._closed_at is not None:
                self.last_episode_s = self.clock() - self._closed_at
                self._paused_s += self.last_episode_s
            self._closed_at = None
            return "ended"
        return None

    def paused_s(self) -> float:
        """Seconds the gate has been closed, the current episode included."""
        running = 0.0 if self._closed_at is None else self.clock() - self._closed_at
        return self._paused_s + running


@dataclass(slots=True)
class DeviceCounts:
    """One device's figures at the bridge."""

    #: messages stored in the stream
    forwarded: int = 0
    #: batches missing from the device's sequence (discarded before they reached the bridge)
    gaps: int = 0


@dataclass(slots=True)
class DeviceLedger:
    """Per-device counts, and the last batch sequence seen of each device's boot."""

    devices: dict[tuple[str, str], DeviceCounts] = field(default_factory=dict)
    _last: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    def _counts(self, tenant: str, device_id: str) -> DeviceCounts:
        counts = self.devices.get((tenant, device_id))
        if counts is None:
            counts = self.devices[(tenant, device_id)] = DeviceCounts()
        return counts

    def forwarded(self, tenant: str, device_id: str, boot_id: str | None,
                  seq: int | None) -> None:
        """A message of the device is in the stream; a jump in its sequence counts as gaps.

        A sequence going back (a redelivery, a device resending its queue) is no gap, and the
        first message of a boot starts the count afresh.
        """
        counts = self._counts(tenant, device_id)
        counts.forwarded += 1
        if boot_id is None or seq is None:
            return
        key = (tenant, device_id)
        last = self._last.get(key)
        if last is not None and last[0] == boot_id:
            if seq > last[1] + 1:
                counts.gaps += seq - last[1] - 1
            if seq <= last[1]:
                return
        self._last[key] = (boot_id, seq)

    def totals(self) -> DeviceCounts:
        """The sums over every device."""
        out = DeviceCounts()
        for counts in self.devices.values():
            out.forwarded += counts.forwarded
            out.gaps += counts.gaps
        return out
