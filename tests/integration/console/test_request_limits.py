"""Attacks on the running console with request bodies (issue 18.2): a body larger than
``[serve] max_body_bytes`` is refused with 413 before it is read, and an API body without a
valid token gets 401 before any of it is read.

The requests are written on a raw socket so the test sees how much of a body the server took
before it answered: the attacker keeps streaming until the answer arrives.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

import pytest

from tests.integration.console.conftest import ConsoleUnderTest

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
#: what an attacker would send (it never gets this far)
ATTACK_BYTES = 200 * MIB
#: the limit the console runs with ([serve] max_body_bytes default)
LIMIT = MIB


def _connect(console: ConsoleUnderTest) -> socket.socket:
    url = urlsplit(console.url)
    sock = socket.create_connection((url.hostname, url.port))
    sock.settimeout(60.0)  # a server that waited for the whole body fails the test, not hangs it
    return sock


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in
                                                           headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the whole answer (head and a body of its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def _length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(head) + 4


def _chunk(piece: bytes) -> bytes:
    return f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


def _stream_until_answered(sock: socket.socket, head: bytes,
                           first: bytes = b"[") -> tuple[int, int]:
    """Send ``head``, then a chunked body (``first``, then 64 KiB pieces) of up to ATTACK_BYTES
    until the server answers; (status, body bytes sent)."""
    sock.sendall(head + _chunk(first))
    sent = len(first)
    piece = b"1," * 32768  # a JSON array (or a YAML file's text) that never ends
    chunk = _chunk(piece)
    sock.setblocking(False)
    try:
        while sent < ATTACK_BYTES:
            readable, writable, _ = select.select([sock], [sock], [], 60.0)
            if readable:
                break
            assert writable, "the server neither read nor answered"
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
    finally:
        sock.settimeout(60.0)
    status, _ = _answer(sock)
    return status, sent


def test_a_declared_oversized_body_is_refused_before_it_is_sent(
        console: ConsoleUnderTest) -> None:
    case_id = console.case_id("globex")
    with _connect(console) as sock:
        sock.sendall(_head(f"/api/v1/cases/{case_id}/notes", {
            "Authorization": f"Bearer {console.tokens[('globex', 'agent')]}",
            "Content-Type": "application/json", "Content-Length": str(ATTACK_BYTES)}))
        status, data = _answer(sock)  # not one byte of the body was sent
    assert status == 413, data
    assert b"larger than" in data


def test_a_streamed_body_is_cut_at_the_limit(console: ConsoleUnderTest) -> None:
    case_id = console.case_id("globex")
    with _connect(console) as sock:
        status, sent = _stream_until_answered(sock, _head(f"/api/v1/cases/{case_id}/notes", {
            "Authorization": f"Bearer {console.tokens[('globex', 'agent')]}",
            "Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    assert status == 413
    # the server stopped reading at the limit; what else went out sat in socket buffers
    assert sent < 40 * MIB


@pytest.mark.parametrize("authorization", ["", "Bearer fw_000000000000_wrongwrongwrongwrongwrong",
                                           "Basic YWRtaW46YWRtaW4="],
                         ids=["none", "invalid", "not-bearer"])
def test_an_api_body_without_a_valid_token_is_not_read(console: ConsoleUnderTest,
                                                       authorization: str) -> None:
    case_id = console.case_id("globex")
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    if authorization:
        headers["Authorization"] = authorization
    with _connect(console) as sock:
        status, sent = _stream_until_answered(
            sock, _head(f"/api/v1/cases/{case_id}/notes", headers))
    assert status == 401
    assert sent < 40 * MIB


def test_a_rules_upload_over_the_limit_is_refused(console: ConsoleUnderTest) -> None:
    with _connect(console) as sock:
        status, sent = _stream_until_answered(sock, _head("/api/v1/rules/validate", {
            "Authorization": f"Bearer {console.tokens[('acme', 'agent')]}",
            "Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"}),
            first=b'--x\r\nContent-Disposition: form-data; name="file"; filename="r.yaml"\r\n'
                  b"Content-Type: text/yaml\r\n\r\n")
    assert status == 413
    assert sent < 40 * MIB


def test_bodies_within_the_limit_still_work(console: ConsoleUnderTest) -> None:
    case_id = console.case_id("globex")
    with console.client("globex", "agent") as api:
        answer = api.post(f"/api/v1/cases/{case_id}/notes", json={"text": "x" * 3000})
    assert answer.status_code == 201
    with console.client("globex", "agent") as api:
        big = api.post(f"/api/v1/cases/{case_id}/notes", json={"text": "x" * (LIMIT + 10)})
    assert big.status_code == 413
