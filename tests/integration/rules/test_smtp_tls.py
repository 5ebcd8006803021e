"""E-mail over TLS against aiosmtpd with a self-signed certificate (issue 18.4): the server's
certificate is verified with its host name, a private CA is trusted through ``ca_file``, and
credentials never cross the network in clear."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from rules.errors import NotifyError
from rules.notifiers.base import Notice
from rules.notifiers.smtp import SmtpNotifier
from tests.servers.smtp import Certificate, SmtpServer, self_signed

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]

NOTICE = Notice("case-1-customer-opened", "customer", "acme", "hp-1", 1, "Subject", "Body",
                recipient="kim@example.com")
LOGIN = ("forewarn", "s3cret")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture(params=["starttls", "implicit"])
def tls_server(request: pytest.FixtureRequest, certificate: Certificate
               ) -> Iterator[tuple[SmtpServer, Literal["starttls", "implicit"]]]:
    with SmtpServer(certificate=certificate, tls=request.param) as server:
        yield server, request.param


def test_an_unverified_certificate_is_refused_before_the_login(
        tls_server: tuple[SmtpServer, Literal["starttls", "implicit"]]) -> None:
    server, tls = tls_server
    mail = SmtpNotifier(server.host, server.port, "support@example.com", tls=tls, login=LOGIN)
    with pytest.raises(NotifyError, match="certificate not trusted") as raised:
        asyncio.run(mail.send(NOTICE))
    assert not raised.value.retryable
    assert server.logins == [] and server.messages == []


def test_with_the_ca_file_the_login_and_the_message_go_encrypted(
        tls_server: tuple[SmtpServer, Literal["starttls", "implicit"]],
        certificate: Certificate) -> None:
    server, tls = tls_server
    mail = SmtpNotifier(server.host, server.port, "support@example.com", tls=tls, login=LOGIN,
                        ca_file=certificate.cert)
    asyncio.run(mail.send(NOTICE))
    assert server.logins == [("forewarn", True)]
    assert [str(m["To"]) for m in server.messages] == ["kim@example.com"]


def test_the_host_name_is_checked(tmp_path: Path) -> None:
    # trusted, but made out to another name than the one connected to
    other = self_signed(tmp_path, names=("DNS:mail.example.com",))
    with SmtpServer(certificate=other, tls="starttls") as server:
        mail = SmtpNotifier(server.host, server.port, "support@example.com", tls="starttls",
                            login=LOGIN, ca_file=other.cert)
        with pytest.raises(NotifyError, match="certificate not trusted"):
            asyncio.run(mail.send(NOTICE))
        assert server.logins == []


def test_no_login_in_clear() -> None:
    with SmtpServer() as server:  # a server without TLS
        with pytest.raises(NotifyError, match="without TLS"):
            SmtpNotifier(server.host, server.port, "support@example.com", tls="none",
                         login=LOGIN)
        mail = SmtpNotifier(server.host, server.port, "support@example.com", tls="starttls",
                            login=LOGIN)
        with pytest.raises(NotifyError, match="does not offer STARTTLS"):
            asyncio.run(mail.send(NOTICE))
        assert server.logins == [] and server.messages == []
