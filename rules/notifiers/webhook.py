"""A signed webhook: one JSON POST per notice, HMAC-SHA256 signed, with an idempotency key.

Headers: ``Idempotency-Key`` (the notice's key: the same notice always carries the same key,
so a receiver drops repeats), ``X-Forewarn-Timestamp`` (epoch seconds) and
``X-Forewarn-Signature: sha256=<hex HMAC of "<timestamp>.<body>">``. A receiver checks it with
:func:`verify_signature`.

>>> body, ts = b'{"a": 1}', "1700000000"
>>> signature = sign(b"s3cret", ts, body)
>>> signature.startswith("sha256="), verify_signature(b"s3cret", ts, body, signature, now=1.7e9)
(True, True)
>>> verify_signature(b"other", ts, body, signature, now=1.7e9)
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from types import TracebackType

import httpx

from rules.errors import NotifyError
from rules.notifiers.base import Notice

__all__ = ["WebhookNotifier", "sign", "verify_signature"]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str,
                     now: float | None = None, tolerance_s: float = 300.0) -> bool:
    """Receiver side: is the signature right and the timestamp recent (replays refused)?"""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    """POSTs notices to ``url`` (or to the notice's own ``recipient`` URL).

    Use as ``async with WebhookNotifier(url, secret) as hook:`` (or call :meth:`aclose`).
    """

    name = "webhook"

    def __init__(self, url: str, secret: bytes, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.secret = secret
        self.clock = clock
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout_s)

    async def __aenter__(self) -> WebhookNotifier:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (when this notifier made it)."""
        if self._own_client:
            await self.client.aclose()

    async def send(self, notice: Notice) -> None:
        """POST one notice; 2xx (and 409: already have it) is delivered."""
        url = notice.recipient if notice.recipient.startswith(("http://", "https://")) \
            else self.url
        body = json.dumps(notice.payload(), ensure_ascii=False).encode()
        timestamp = f"{self.clock():.0f}"
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": notice.idempotency_key,
            "X-Forewarn-Timestamp": timestamp,
            "X-Forewarn-Signature": sign(self.secret, timestamp, body),
        }
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook {url}: {type(exc).__name__}: {exc}",
                              retryable=True) from exc
        status = response.status_code
        if 200 <= status < 300 or status == 409:
            return
        # 408/429 and 5xx are the receiver's bad moment; other 4xx will not get better
        retryable = status in (408, 425, 429) or status >= 500
        raise NotifyError(f"webhook {url} answered {status}", retryable=retryable)
