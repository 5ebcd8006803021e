"""``POST /api/v1/ingest/{mapping}``: telemetry over HTTP, for integrations without MQTT.

Served by ``forewarn core`` (the direct engine) on its own port (``[core] ingest_http_port``;
0: off), by a small HTTP endpoint in core's event loop, as ``/metrics`` is
(:mod:`forewarn.core_metrics`). A body goes through the same path as an MQTT message of the
mapping (:class:`~core.mapping.MappedDecoder` → :class:`~core.pipeline.CorePipeline` → rules):
dead letters, dedup, store and cases are the same. docs/connect.md has the contract; in short:

- ``Authorization: Bearer fw_…``: a token of the ``ingest`` role (``forewarn tokens create
  --role ingest --tenant T``); 401 without a valid one (console tokens are not valid here),
  403 when the mapping has a fixed tenant other than the token's. A mapping that takes its
  tenant from the topic (``+tenant``) gets the token's tenant.
- The device: the payload's ``device_key`` when the mapping has one, else ``?device=ID``
  (400 when it is missing, or given beside a ``device_key``). The mapping's topic is not used.
- ``Content-Length`` is required (411); above ``[core] ingest_http_max_body_bytes`` the
  request is refused with 413 before its body is read.
- 202 with ``{"readings", "fields", "values", "duplicate", "events", …}``; a body the mapping
  cannot read is dead-lettered under the topic ``http/{mapping}/{device}`` and answered 422
  with ``{"error": reason, "detail": …}``; 503 when the store is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from core.decode import DecodedBatch
from core.events import ScoredBatch
from core.mapping import MappedDecoder, MappingConfig
from core.pipeline import CorePipeline
from core.store.base import StoreError
from forewarn.auth import Principal, TokenStore
from forewarn.ports import listening_socket

__all__ = ["PATH_PREFIX", "IngestHttp", "Reply"]

_log = logging.getLogger(__name__)

PATH_PREFIX = "/api/v1/ingest/"
_MAX_HEADERS = 100
_REASONS = {202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Content Too Large", 422: "Unprocessable Content",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its status and JSON body."""

    status: int
    body: dict[str, Any]

    def encode(self) -> bytes:
        """The HTTP/1.1 response, connection closed after it."""
        data = json.dumps(self.body).encode() + b"\n"
        head = (f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n")
        if self.status == 401:
            head += 'WWW-Authenticate: Bearer realm="forewarn-ingest"\r\n'
        return head.encode() + b"\r\n" + data


async def _discard(reader: asyncio.StreamReader, headers: dict[str, str],
                   most: int) -> None:
    """Read and drop a body not yet read (at most ``most`` bytes, for a few seconds)."""
    with contextlib.suppress(ValueError, TimeoutError, ConnectionError,
                             asyncio.IncompleteReadError):
        length = int(headers.pop("content-length", "0"))
        if 0 < length <= most:
            async with asyncio.timeout(5.0):
                await reader.readexactly(length)


def _error(status: int, error: str, detail: str) -> Reply:
    return Reply(status, {"error": error, "detail": detail})


class IngestHttp:
    """The HTTP ingest endpoint of one core process."""

    def __init__(self, pipeline: CorePipeline, mappings: tuple[MappingConfig, ...] | list[
                 MappingConfig], tokens: TokenStore,
                 sink: Callable[[ScoredBatch], Awaitable[None]],
                 on_handled: Callable[[], None] | None = None,
                 max_body_bytes: int = 1 << 20, timeout_s: float = 30.0) -> None:
        self.pipeline = pipeline
        self.mappings = {m.name: m for m in mappings}
        decoder = pipeline.decoder
        self.decoder = decoder if isinstance(decoder, MappedDecoder) else MappedDecoder(
            list(mappings), clock=pipeline.clock)
        self.tokens = tokens
        self.sink = sink
        self.on_handled = on_handled
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    @contextlib.asynccontextmanager
    async def serving(self, host: str, port: int) -> AsyncIterator[IngestHttp]:
        """Serve for the life of the context."""
        sock = listening_socket("core's HTTP ingest ([core] ingest_http_port)", host, port)
        server = await asyncio.start_server(self._answer, sock=sock)
        _log.info("HTTP ingest on http://%s:%d%s{mapping}", host, port, PATH_PREFIX)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                headers: dict[str, str] = {}
                reply = await self._handle(reader, headers)
            writer.write(reply.encode())
            await writer.drain()
            if reply.status != 202:  # a refused body the client may still be sending: read
                await _discard(reader, headers, self.max_body_bytes)  # it, or it may lose
                # the answer to the reset a close with unread data makes
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            _log.debug("ingest request dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> Reply:
        try:
            request = await reader.readline()
            for _ in range(_MAX_HEADERS + 1):
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            else:
                return _error(431, "too_many_headers", f"at most {_MAX_HEADERS} headers")
        except ValueError:  # a line above the reader's limit (64 KiB)
            return _error(431, "header_too_large", "a request or header line is too long")
        parts = request.decode("latin-1").split()
        if len(parts) != 3:
            return _error(400, "bad_request", "not an HTTP request line")
        method, target = parts[0], urlsplit(parts[1])
        if not target.path.startswith(PATH_PREFIX):
            return _error(404, "not_found", f"POST {PATH_PREFIX}{{mapping}}")
        if method != "POST":
            return _error(405, "method_not_allowed", f"POST {PATH_PREFIX}{{mapping}}")
        principal = await self._principal(headers.get("authorization", ""))
        if principal is None:
            return _error(401, "unauthorized", "needs 'Authorization: Bearer TOKEN', a valid "
                          "token of the ingest role (forewarn tokens create --role ingest)")
        name = unquote(target.path[len(PATH_PREFIX):])
        mapping = self.mappings.get(name)
        if mapping is None:
            return _error(404, "unknown_mapping", f"no [[ingest.mapping]] named {name[:100]!r}")
        if mapping.tenant is not None and mapping.tenant != principal.tenant:
            return _error(403, "forbidden", f"mapping {name} belongs to another tenant than "
                          f"the token's ({principal.tenant})")
        if "chunked" in headers.get("transfer-encoding", "").lower() or \
                "content-length" not in headers:
            return _error(411, "length_required", "send the body with a Content-Length")
        try:
            length = int(headers["content-length"])
        except ValueError:
            return _error(400, "bad_request", "Content-Length is not a number")
        if length < 0:
            return _error(400, "bad_request", "Content-Length is negative")
        if length > self.max_body_bytes:
            return _error(413, "too_large", f"the body has {length} bytes, more than the "
                          f"{self.max_body_bytes} of [core] ingest_http_max_body_bytes")
        query = parse_qs(target.query)
        device = query.get("device", [None])[-1]
        if mapping.device_key is not None and device is not None:
            return _error(400, "bad_request", f"mapping {name} takes the device from the "
                          f"payload's {mapping.device_key!r}: leave out ?device=")
        if mapping.device_key is None and not device:
            return _error(400, "bad_request", f"mapping {name} needs ?device=ID (it has no "
                          "device_key)")
        body = await reader.readexactly(length)
        del headers["content-length"]  # read: nothing left to discard
        return await self._ingest(mapping, principal, device, body)

    async def _principal(self, authorization: str) -> Principal | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await asyncio.to_thread(self.tokens.verify_ingest, token.strip())

    async def _ingest(self, mapping: MappingConfig, principal: Principal, device: str | None,
                      body: bytes) -> Reply:
        levels = {"tenant": principal.tenant}
        if device is not None:
            levels["device"] = device
        topic = f"http/{mapping.name}/{device or mapping.device_key}"[:256]

        def decode() -> DecodedBatch:
            return self.decoder.decode(mapping, topic, body, levels)

        try:
            scored, refused = self.pipeline.process_checked(topic, body, decode)
        except StoreError as exc:
            _log.warning("HTTP ingest: the store refused a batch: %s", exc)
            return _error(503, "store_unavailable", str(exc)[:300])
        if refused is not None:
            return _error(500 if refused[0] == "crash" else 422, refused[0], refused[1])
        answer: dict[str, Any] = {"mapping": mapping.name, "tenant": principal.tenant,
                                  "duplicate": scored is None}
        if scored is not None:
            answer.update(device=scored.device_id, readings=int(scored.t.shape[0]),
                          fields=len(scored.fields),
                          values=int(scored.values.size),
                          events=len(scored.events))
            try:
                await self.sink(scored)
            except Exception as exc:  # foreign code: the batch is stored, go on
                _log.exception("the rules failed on a batch of %s", topic)
                self.pipeline.dead_letters.record("rules_failed", topic, repr(exc), body)
        else:
            answer.update(readings=0, fields=0, values=0, events=0)
        if self.on_handled is not None:
            self.on_handled()
        return Reply(202, answer)
