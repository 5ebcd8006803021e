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
    #: None: a team notice about the service itself (ingest back-pressure)
    case_id: int | None
    subject: str
    body: str
    #: e-mail address, webhook or Apprise URL ("": the channel's configured default)
    recipient: str = ""
    #: opened, reopened, escalated, resolved
    kind: str = "opened"

    def payload(self) -> dict[str, object]:
        """The notice as a JSON-ready mapping (what the webhook posts)."""
        return {"idempotency_key": self.idempotency_key, "audience": self.audience,
                "kind": self.kind, "tenant": self.tenant, "device_id": self.device_id,
                "case_id": self.case_id, "subject": self.subject, "body": self.body}


class Notifier(Protocol):
    """A delivery channel. Raise ``NotifyError(reason, retryable=...)``; the outbox retries."""

    name: str

    async def send(self, notice: Notice) -> None:
        """Deliver one notice."""
        ...
