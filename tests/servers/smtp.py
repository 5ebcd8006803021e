"""A local SMTP server (aiosmtpd) on a free 127.0.0.1 port that keeps what it receives::

    with SmtpServer() as smtp:
        SmtpNotifier(smtp.host, smtp.port, sender="support@example.com")
        smtp.messages          # list of email.message.EmailMessage

``refuse`` makes it answer every RCPT with 550 (a permanent failure). With ``certificate``
(a :class:`Certificate`, e.g. from :func:`self_signed`) it speaks TLS: ``tls="starttls"``
offers STARTTLS and AUTH only after it, ``tls="implicit"`` is TLS from the first byte. Logins
are kept in ``logins`` as (user, whether the connection was encrypted).
"""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from forewarn.ports import free_port

__all__ = ["Certificate", "SmtpServer", "self_signed"]


@dataclass(frozen=True, slots=True)
class Certificate:
    """A PEM certificate and its key; the certificate is also the CA a client must trust."""

    cert: Path
    key: Path


def self_signed(folder: Path, names: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")
                ) -> Certificate:
    """A self-signed certificate for ``names`` (subjectAltName entries), made by ``openssl``."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=forewarn-test",
                    "-addext", f"subjectAltName={','.join(names)}"],
                   check=True, capture_output=True)
    return Certificate(cert, key)


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

    def __init__(self, refuse: bool = False, certificate: Certificate | None = None,
                 tls: Literal["starttls", "implicit"] = "starttls") -> None:
        self.refuse = refuse
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Condition()
        self.port = free_port(self.host)
        options: dict[str, Any] = {"authenticator": self._authenticate}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificate.cert, certificate.key)
            # aiosmtpd takes only STARTTLS for encrypted; implicit TLS is encrypted throughout
            options.update({"ssl_context": context, "auth_require_tls": False}
                           if tls == "implicit"
                           else {"tls_context": context, "require_starttls": True})
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      **options)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        with self.lock:
            encrypted = (session.ssl is not None
                         or server.transport.get_extra_info("sslcontext") is not None)
            self.logins.append((auth_data.login.decode(), encrypted))
        return AuthResult(success=True)

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
