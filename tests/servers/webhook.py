"""A webhook receiver on a free 127.0.0.1 port: checks signatures, counts idempotency keys.

It records every request (``received``: key → how many times it came) and keeps each key's
first body once (``delivered``: the receiver-side dedup a real endpoint does). It can fail the
first ``fail_first`` requests with 503 and answer slowly (``delay_s``), to exercise retries and
to give a crash test something in flight::

    with WebhookReceiver(secret=b"s3cret") as hook:
        WebhookNotifier(hook.url, b"s3cret")
        hook.wait_for(10, timeout_s=5)      # until 10 distinct keys arrived
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from rules.notifiers.webhook import verify_signature

__all__ = ["WebhookReceiver"]


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 drops connects of a concurrent sender: 1 s SYN retries
    request_queue_size = 256
    daemon_threads = True


class WebhookReceiver:
    """Threaded HTTP server that takes ``POST /hook``."""

    host = "127.0.0.1"

    def __init__(self, secret: bytes | None = None, fail_first: int = 0,
                 delay_s: float = 0.0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.received: Counter[str] = Counter()
        self.delivered: dict[str, dict[str, Any]] = {}
        #: monotonic receipt time of each key's first arrival
        self.first_seen: dict[str, float] = {}
        self.bad_signatures = 0
        #: requests cut off before their body was complete
        self.incomplete = 0
        self.requests = 0
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request (the crash test does that)
                    with receiver._lock:
                        receiver.incomplete += 1
                    return
                status = receiver._take(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = _Server((self.host, 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://{self.host}:{self.port}/hook"

    def _take(self, body: bytes, headers: Any) -> int:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self.requests += 1
            if self.requests <= self.fail_first:
                return 503
        if self.secret is not None and not verify_signature(
                self.secret, headers.get("X-Forewarn-Timestamp", ""), body,
                headers.get("X-Forewarn-Signature", "")):
            with self._lock:
                self.bad_signatures += 1
            return 401
        payload = json.loads(body)
        key = headers.get("Idempotency-Key") or payload.get("idempotency_key") or \
            f"apprise-{self.requests}"
        with self._lock:
            self.received[key] += 1
            if key not in self.delivered:
                self.delivered[key] = payload
                self.first_seen[key] = time.monotonic()
            self._lock.notify_all()
        return 200

    def wait_for(self, keys: int, timeout_s: float) -> bool:
        """Block until ``keys`` distinct keys arrived (False on timeout)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.delivered) >= keys, timeout_s)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
