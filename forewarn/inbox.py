"""``forewarn inbox``: an SMTP receiver (aiosmtpd) that files customers' e-mail replies.

Point the support address's MX (or a forwarding rule) at it. A reply that quotes ``FW-<id>``
and comes from the address that case's notice went to lands on the case's timeline and goes
to the team (:func:`rules.replies.file_reply`); any other mail is kept as a dead letter
(reason ``unfiled_reply``, ``forewarn deadletters list``), counted, never dropped.

Usage::

    handler = ReplyHandler(engine, Push("email", "team@example.com"))
    controller = Controller(handler, hostname="127.0.0.1", port=2525)
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine

from core.dead_letter import DeadLetter, DeadLetterStore
from rules.case_actions import Push
from rules.replies import file_reply

__all__ = ["UNFILED", "ReplyHandler", "reply_text"]

#: the dead-letter reason of a reply that could not be filed
UNFILED = "unfiled_reply"


def reply_text(message: EmailMessage) -> str:
    """The reply's plain text (its HTML part's text when it has no plain one)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        return ""
    return content if isinstance(content, str) else ""


class ReplyHandler:
    """aiosmtpd handler: files each mail or keeps it as a dead letter."""

    def __init__(self, engine: Engine, team: Push,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.team = team
        self.clock = clock
        self.dead_letters = DeadLetterStore(engine)
        self.filed = 0
        self.unfiled = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Take one mail (always 250: a mail we cannot file is kept, not bounced)."""
        raw: bytes = envelope.original_content or envelope.content or b""
        await anyio.to_thread.run_sync(self._take, raw, str(envelope.mail_from or ""))
        return "250 OK"

    def _take(self, raw: bytes, mail_from: str) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        sender = email.utils.parseaddr(str(message.get("From", "")))[1] or mail_from
        subject = str(message.get("Subject", ""))
        case_id = file_reply(self.engine, sender, subject, reply_text(message), self.clock(),
                             self.team)
        if case_id is not None:
            self.filed += 1
            return
        self.unfiled += 1
        self.dead_letters.add_many([DeadLetter(
            UNFILED, f"mail from {sender or '?'}",
            f"no case it quotes (FW-n) had a notice to {sender or 'this sender'}: {subject}",
            raw[:4096], self.clock())])
