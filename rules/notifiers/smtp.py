"""E-mail over SMTP (the standard library's client, in a worker thread).

The message carries the notice's idempotency key as its ``Message-ID`` and in
``X-Forewarn-Idempotency-Key``, so a mail system or a person can spot a repeat.

TLS is ``"starttls"`` (port 587: the connection is upgraded before anything else is said),
``"implicit"`` (port 465: TLS from the first byte) or ``"none"`` (a relay on this machine). The
server's certificate is verified against the system's CAs (or ``ca_file``) with its host name
checked, and a login is refused without TLS, so credentials never cross the network in clear.
Usage::

    mail = SmtpNotifier("smtp.example.com", 587, sender="support@example.com",
                        default_to="team@example.com", tls="starttls", login=("user", "pw"))

>>> SmtpNotifier("127.0.0.1", 25, sender="a@example.com", tls="none", login=("u", "p"))
Traceback (most recent call last):
...
rules.errors.NotifyError: SMTP login refused without TLS: set tls = "starttls" or "implicit"
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Literal

from rules.errors import NotifyError
from rules.notifiers.base import Notice

__all__ = ["SmtpNotifier"]


class SmtpNotifier:
    """Sends each notice as one plain-text e-mail to its recipient (or ``default_to``)."""

    name = "email"

    def __init__(self, host: str, port: int, sender: str, default_to: str = "",
                 tls: Literal["starttls", "implicit", "none"] = "starttls",
                 login: tuple[str, str] | None = None, timeout_s: float = 10.0,
                 domain: str = "forewarn.local", ca_file: Path | None = None) -> None:
        if login is not None and tls == "none":
            raise NotifyError('SMTP login refused without TLS: set tls = "starttls" or '
                              '"implicit"', retryable=False)
        self.host = host
        self.port = port
        self.sender = sender
        self.default_to = default_to
        self.tls = tls
        self.login = login
        self.timeout_s = timeout_s
        self.domain = domain
        self.ca_file = ca_file
        #: verifies the server's certificate and host name (None: no TLS)
        self.context = (None if tls == "none"
                        else ssl.create_default_context(cafile=None if ca_file is None
                                                        else str(ca_file)))

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
            client = (smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                       context=self.context) if self.tls == "implicit"
                      else smtplib.SMTP(self.host, self.port, timeout=self.timeout_s))
            with client:
                if self.tls == "starttls":
                    try:
                        client.starttls(context=self.context)
                    except smtplib.SMTPNotSupportedError as exc:
                        # nothing (no login, no message) goes out unencrypted
                        raise NotifyError(f"SMTP {self.host}:{self.port} does not offer "
                                          "STARTTLS", retryable=False) from exc
                if self.login is not None:
                    client.login(*self.login)
                client.send_message(msg)
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(f"SMTP {self.host}:{self.port}: {exc}", retryable=False) from exc
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"SMTP {self.host}:{self.port}: certificate not trusted: "
                              f"{exc.verify_message} (set [notify.email] ca_file for a private "
                              "CA)", retryable=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(f"SMTP refused the recipient: {exc}", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            # 4xx: try later; 5xx: the server will say the same next time
            raise NotifyError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                              retryable=exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP {self.host}:{self.port}: {exc}", retryable=True) from exc
