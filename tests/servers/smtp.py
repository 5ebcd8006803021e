"""A local SMTP server (aiosmtpd) on a free 127.0.0.1 port that keeps what it receives::

    with SmtpServer() as smtp:
        SmtpNotifier(smtp.host, smtp.port, sender="support@example.com")
        smtp.messages          # list of email.message.EmailMessage

``refuse`` makes it answer every RCPT with 550 (a permanent failure).
"""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from forewarn.broker import free_port

__all__ = ["SmtpServer"]


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.server.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.server.lock:
            self.server.messages.append(message)
            self.server.lock.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd in its own thread."""

    host = "127.0.0.1"

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.messages: list[EmailMessage] = []
        self.lock = threading.Condition()
        self.port = free_port(self.host)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)

    def wait_for(self, count: int, timeout_s: float) -> bool:
        """Block until ``count`` messages arrived."""
        with self.lock:
            return self.lock.wait_for(lambda: len(self.messages) >= count, timeout_s)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()
