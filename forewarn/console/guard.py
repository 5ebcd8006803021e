"""What the console checks before it reads a request's body: its size and, for the API, the token.

FastAPI reads and parses a body before it runs a route's dependencies, so a bearer check in a
dependency comes after a 200 MiB JSON body has been read into memory. This ASGI middleware runs
first:

* a body larger than ``ConsoleContext.max_body_bytes`` (``[serve] max_body_bytes``) is refused
  with 413: at once when its ``Content-Length`` says so, else as soon as the bytes streamed in
  (chunked) pass the limit; the rest is never read;
* an API call that sends a body (POST, PUT, PATCH, DELETE under ``/api/``) without a valid token
  is refused with 401 before any of its body is read; the principal found is kept in the
  request's state so the route's dependency does not look it up twice.

Usage::

    app.add_middleware(RequestGuard, ctx=ctx)
"""

from __future__ import annotations

import json

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forewarn.console.context import ConsoleContext

__all__ = ["PRINCIPAL_STATE", "RequestGuard"]

#: the key of ``request.state`` holding the principal the guard verified
PRINCIPAL_STATE = "principal"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _answer(send: Send, status: int, detail: str,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuses oversized bodies (413) and API bodies without a valid token (401) unread."""

    def __init__(self, app: ASGIApp, ctx: ConsoleContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ctx.max_body_bytes
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, f"the body is larger than {limit} bytes")
                return
        if scope["method"] in _WITH_BODY and scope["path"].startswith("/api/"):
            scheme, _, token = headers.get("authorization", "").partition(" ")
            principal = None
            if scheme.lower() == "bearer" and token:
                principal = await anyio.to_thread.run_sync(self.ctx.tokens.verify, token)
            if principal is None:
                await _answer(send, 401, "missing, invalid or revoked bearer token",
                              ((b"www-authenticate", b"Bearer"),))
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with a receive that stops at ``limit`` bytes; then the answer is 413."""
        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # the app sees a client that went away; the guard answers for it
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                if not started:
                    started = True
                    await _answer(send, 413, f"the body is larger than {limit} bytes")
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _answer(send, 413, f"the body is larger than {limit} bytes")
