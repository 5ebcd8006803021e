"""The login's pieces on their own: where ``next`` may lead, and the failure window's memory."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from forewarn.console.throttle import LoginLimiter
from forewarn.console.web import _safe_next


@given(st.text(max_size=200))
def test_next_is_always_a_path_of_this_site(target: str) -> None:
    """Issue 18.1: whatever ``next`` says, the redirect stays on the site and is plain text."""
    safe = _safe_next(target)
    parts = urlsplit(safe)
    assert safe.startswith("/") and not safe.startswith(("//", "/\\"))
    assert not parts.scheme and not parts.netloc
    assert not set(safe) & set("\"'<>\\ \t\r\n")
    assert safe == target or safe == "/"


def test_a_flood_of_addresses_stays_bounded() -> None:
    now = [0.0]
    limiter = LoginLimiter(failures=2, window_s=60.0, clock=lambda: now[0], max_addresses=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._seen) == 100
    limiter.failed("10.0.3.231")  # the newest address is still limited
    assert limiter.retry_after("10.0.3.231") == 60.0
    assert limiter.retry_after("10.0.0.0") == 0.0  # the oldest were forgotten
