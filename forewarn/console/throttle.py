"""How many failed logins an address may make: a sliding window per address, in memory.

A token's secret has 256 bits, so guessing one is hopeless; the limit keeps a script from
hammering the login page (and the case database behind it) and shows up in the logs as 429s.
Addresses are remembered least recently used first, at most ``max_addresses`` of them, so a
flood of addresses cannot grow the table without bound.

>>> now = [0.0]
>>> limiter = LoginLimiter(failures=2, window_s=60.0, clock=lambda: now[0])
>>> limiter.retry_after("10.0.0.1")
0.0
>>> limiter.failed("10.0.0.1"); limiter.failed("10.0.0.1")
>>> limiter.retry_after("10.0.0.1"), limiter.retry_after("10.0.0.2")
(60.0, 0.0)
>>> now[0] = 60.0
>>> limiter.retry_after("10.0.0.1")
0.0
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """At most ``failures`` failed logins per address within ``window_s`` seconds."""

    def __init__(self, failures: int = 5, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = 10_000) -> None:
        self.failures = failures
        self.window_s = window_s
        self.clock = clock
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # sync routes run in a thread pool

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: now)."""
        with self._lock:
            times = self._recent(address)
            if times is None or len(times) < self.failures:
                return 0.0
            return max(0.0, times[0] + self.window_s - self.clock())

    def failed(self, address: str) -> None:
        """Count a failed login of ``address``."""
        with self._lock:
            times = self._recent(address)
            if times is None:
                times = self._seen[address] = deque(maxlen=self.failures)
                while len(self._seen) > self.max_addresses:
                    self._seen.popitem(last=False)
            times.append(self.clock())
            self._seen.move_to_end(address)

    def succeeded(self, address: str) -> None:
        """Forget the address's failures."""
        with self._lock:
            self._seen.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        times = self._seen.get(address)
        if times is None:
            return None
        horizon = self.clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times
