"""Signed per-case links to the customer's status page: ``<public_url>/s/<token>``.

A token names one case and when it was issued, signed with HMAC-SHA256 under a secret that
survives restarts (``[serve] status_secret``, or one derived from ``session_secret``). It needs
no login and cannot be guessed (128 bits of signature); it stops working ``max_age_s`` after it
was issued, and a case that closed stops honouring it ``grace_s`` after it resolved (the page
checks that against the case, see :meth:`StatusLinks.live`).

>>> links = StatusLinks("s3cret", "https://support.example.com/", clock=lambda: 1000.0)
>>> url = links.url(42)
>>> url.startswith("https://support.example.com/s/42-")
True
>>> token = url.rsplit("/", 1)[1]
>>> links.case_id(token)
42
>>> links.case_id(token.replace("42-", "43-", 1)) is None  # another case: the signature fails
True
>>> links.case_id(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # tampered
True
>>> later = StatusLinks("s3cret", "", clock=lambda: 1000.0 + 91 * 86400)
>>> later.case_id(token) is None  # expired
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

__all__ = ["StatusLinks", "derive_status_secret"]

_SALT = b"forewarn-status-page"


def derive_status_secret(session_secret: str) -> str:
    """A status-link secret derived from the session secret (so one configured secret does)."""
    return hmac.new(session_secret.encode(), _SALT, hashlib.sha256).hexdigest()


class StatusLinks:
    """Makes and checks status-page tokens; ``base_url`` is ``[serve] public_url``."""

    def __init__(self, secret: str, base_url: str = "", *, grace_s: float = 7 * 86400.0,
                 max_age_s: float = 90 * 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("a status link secret must not be empty")
        self._key = hmac.new(secret.encode(), _SALT, hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")
        self.grace_s = grace_s
        self.max_age_s = max_age_s
        self.clock = clock

    def _sign(self, case_id: int, issued: int) -> str:
        mac = hmac.new(self._key, f"{case_id}.{issued}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")

    def token(self, case_id: int) -> str:
        """A fresh token for ``case_id`` (issued now)."""
        issued = int(self.clock())
        return f"{case_id}-{issued:x}-{self._sign(case_id, issued)}"

    def url(self, case_id: int) -> str:
        """The link a notice carries."""
        return f"{self.base_url}/s/{self.token(case_id)}"

    def case_id(self, token: str) -> int | None:
        """The case a genuine, unexpired token names; None for anything else."""
        parts = token.split("-", 2)  # the signature may hold "-" itself
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 12:
            return None
        try:
            issued = int(parts[1], 16)
        except ValueError:
            return None
        case_id = int(parts[0])
        if not hmac.compare_digest(self._sign(case_id, issued), parts[2]):
            return None
        now = self.clock()
        if issued > now + 300 or now - issued > self.max_age_s:
            return None
        return case_id

    def live(self, resolved_at: float | None) -> bool:
        """True while a case's page is shown: open, or resolved less than the grace ago."""
        return resolved_at is None or self.clock() - resolved_at <= self.grace_s
