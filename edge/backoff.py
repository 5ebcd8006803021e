"""Exponential backoff with full jitter, so a fleet that lost its broker does not reconnect in step.

The n-th delay is uniform in ``[0, min(cap_s, base_s * 2**n)]`` (AWS's "full jitter"): the
expected load on a recovering broker is spread over the whole window instead of arriving in waves.

>>> import random
>>> backoff = Backoff(base_s=1.0, cap_s=8.0, rng=random.Random(1))
>>> delays = [backoff.next_delay() for _ in range(6)]
>>> all(0 <= d <= cap for d, cap in zip(delays, [1, 2, 4, 8, 8, 8]))
True
>>> backoff.reset(); backoff.attempt
0
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays between reconnect attempts; :meth:`reset` after a connection succeeds."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 60.0,
                 rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Start over from the smallest window."""
        self.attempt = 0
