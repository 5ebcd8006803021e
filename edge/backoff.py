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

Every retry loop in the tree draws its delay from :func:`full_jitter` (the reconnecting
ingestor, the NATS worker, the buffered store, the outbox), with an injected
:class:`random.Random` so a test can fix the draw.

>>> full_jitter(3, base_s=0.5, cap_s=30.0, rng=random.Random(1)) <= 4.0
True
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "full_jitter"]

#: 2**62 already exceeds any cap; larger exponents would only overflow the float
_MAX_EXPONENT = 62


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """The delay before retry number ``attempt`` (from 0): uniform in [0, min(cap, base·2^n)]."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


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
        delay = full_jitter(self.attempt, self.base_s, self.cap_s, self._rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start over from the smallest window."""
        self.attempt = 0
