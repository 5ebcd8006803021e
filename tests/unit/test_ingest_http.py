"""``POST /api/v1/ingest/{mapping}`` (issue 22) against its real asyncio server, in process: the
contract's corners the subprocess test (tests/integration/test_ingest_http.py) leaves out —
the device from the payload's ``device_key``, the tenant of a ``+tenant`` mapping from the
token, chunked bodies, wrong methods and paths, over-long headers, the rules sink, and the
ingest role kept apart from the console's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.detect import RobustZ
from core.events import ScoredBatch
from core.mapping import MappedDecoder, MappingConfig
from core.pipeline import CorePipeline
from core.store.embedded import EmbeddedStore
from forewarn.auth import Principal, TokenStore
from forewarn.ingest_http import IngestHttp
from forewarn.ports import free_port
from rules.db import connect

MAPPINGS = [
    MappingConfig(name="by-key", topic="x/state", tenant="acme", device_key="serial",
                  time_key="ts"),
    MappingConfig(name="by-tenant", topic="+tenant/+device", time_key="ts"),
]


@pytest.fixture()
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    engine = connect(f"sqlite:///{tmp_path / 'cases.sqlite'}")  # a file: verified in a thread
    yield TokenStore(engine)
    engine.dispose()


def _serve(http: IngestHttp, requests: list[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """Start the server, send each raw request on its own connection, return the answers."""
    async def main() -> list[tuple[int, dict[str, Any]]]:
        port = free_port()
        answers = []
        async with http.serving("127.0.0.1", port):
            for raw in requests:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(raw)
                await writer.drain()
                data = await reader.read()
                writer.close()
                head, _, body = data.partition(b"\r\n\r\n")
                answers.append((int(head.split()[1]), json.loads(body or b"{}")))
        return answers

    return asyncio.run(main())


def _post(path: str, body: bytes, token: str, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_the_device_key_the_token_tenant_and_the_refusals(tokens: TokenStore) -> None:
    sunk: list[ScoredBatch] = []
    pipeline = CorePipeline(RobustZ(), EmbeddedStore(":memory:"),
                            decoder=MappedDecoder(MAPPINGS))

    async def sink(batch: ScoredBatch) -> None:
        sunk.append(batch)

    http = IngestHttp(pipeline, MAPPINGS, tokens, sink, max_body_bytes=10_000)
    acme = tokens.create("acme", "ingest").token
    globex = tokens.create("globex", "ingest").token
    reading = b'[{"ts": 1700000000, "serial": "hp-7", "temp": 21.5}]'
    answers = _serve(http, [
        _post("/api/v1/ingest/by-key", reading, acme),
        _post("/api/v1/ingest/by-key?device=hp-8", reading, acme),
        _post("/api/v1/ingest/by-tenant?device=gw-1", b'{"ts": 1700000000, "rpm": 900}',
              globex),
        _post("/api/v1/ingest/by-tenant?device=gw-1", b"", globex,
              "Transfer-Encoding: chunked\r\n").replace(b"Content-Length: 0\r\n", b""),
        f"GET /api/v1/ingest/by-key HTTP/1.1\r\nAuthorization: Bearer {acme}\r\n\r\n".encode(),
        b"POST /elsewhere HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"POST /api/v1/ingest/by-key HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        _post("/api/v1/ingest/by-key", reading, tokens.create("acme", "admin").token),
        _post("/api/v1/ingest/by-key", b'[{"ts": 1700000000, "temp": 1}]', acme),
    ])
    statuses = [status for status, _ in answers]
    assert statuses == [202, 400, 202, 411, 405, 404, 431, 401, 422]
    assert answers[0][1]["device"] == "hp-7"
    assert answers[2][1]["tenant"] == "globex"
    assert answers[8][1]["error"] == "mapping_mismatch"
    assert [(b.tenant, b.device_id, b.fields) for b in sunk] == [
        ("acme", "hp-7", ("temp",)), ("globex", "gw-1", ("rpm",))]
    assert dict(pipeline.dead_letters.counts) == {"mapping_mismatch": 1}


def test_the_ingest_role_is_apart_from_the_console_roles(tokens: TokenStore) -> None:
    ingest = tokens.create("acme", "ingest")
    admin = tokens.create("acme", "admin")
    assert tokens.verify(ingest.token) is None
    assert tokens.principal(ingest.key) is None  # no web session either
    assert tokens.verify_ingest(admin.token) is None
    who = tokens.verify_ingest(ingest.token)
    assert who is not None and who.allows("ingest") and not who.allows("viewer")
    assert not Principal(admin.key, "acme", "admin").allows("ingest")
