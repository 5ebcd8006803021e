"""What a notification channel is: one async ``send`` that raises :class:`NotifyError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from rules.errors import NotifyError

__all__ = ["Notice", "Notifier", "NotifyError"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one audience about one case, as the outbox hands it to a channel."""

    idempotency_key: str
    audience: Literal["customer", "team"]
    tenant: str
    device_id: str
    case_id: int
    subject: str
    body: str


class Notifier(Protocol):
    """A delivery channel. Raise ``NotifyError(reason, retryable=...)``; the outbox retries."""

    name: str

    async def send(self, notice: Notice) -> None:
        """Deliver one notice."""
        ...
