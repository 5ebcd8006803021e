"""E-mail over SMTP (the standard library's client, in a worker thread).

The message carries the notice's idempotency key as its ``Message-ID`` and in
``X-Forewarn-Idempotency-Key``, so a mail system or a person can spot a repeat.
Usage::

    mail = SmtpNotifier("smtp.example.com", 587, sender="support@example.com",
                        default_to="team@example.com", starttls=True, login=("user", "pw"))
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from rules.errors import NotifyError
from rules.notifiers.base import Notice

__all__ = ["SmtpNotifier"]


class SmtpNotifier:
    """Sends each notice as one plain-text e-mail to its recipient (or ``default_to``)."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, default_to: str = "",
                 starttls: bool = False, login: tuple[str, str] | None = None,
                 timeout_s: float = 10.0, domain: str = "forewarn.local") -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.default_to = default_to
        self.starttls = starttls
        self.login = login
        self.timeout_s = timeout_s
        self.domain = domain

    def message(self, notice: Notice) -> EmailMessage:
        """The e-mail for ``notice``."""
        to = notice.recipient if "@" in notice.recipient else self.default_to
        if not to:
            raise NotifyError("no e-mail address for this notice", retryable=False)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = notice.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<{notice.idempotency_key}@{self.domain}>"
        msg["X-Forewarn-Idempotency-Key"] = notice.idempotency_key
        msg.set_content(notice.body)
        return msg

    async def send(self, notice: Notice) -> None:
        """Deliver one notice."""
        await asyncio.to_thread(self._send, self.message(notice))

    def _send(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as client:
                if self.starttls:
                    client.starttls()
                if self.login is not None:
                    client.login(*self.login)
                client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(f"SMTP refused the recipient: {exc}", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx: try later; 5xx: the server will say the same next time
            raise NotifyError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                              retryable=exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP {self.host}:{self.port}: {exc}", retryable=True) from exc
