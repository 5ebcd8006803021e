"""A local stand-in for InfluxDB's ``/api/v2/query`` endpoint, answering in annotated CSV.

No InfluxDB server can be installed where the tests run, so the Flux read path is tested against
this server. Its answers follow InfluxDB's documented annotated-CSV response format
(https://docs.influxdata.com/influxdb/v2/reference/syntax/annotated-csv/: ``#group``,
``#datatype`` and ``#default`` annotation rows, a header row, then records, a leading empty
annotation column, a blank line between tables of different schema).

Two ways to answer, chosen by ``responder``:

- :func:`fixture_responder`: a recorded response file from ``tests/fixtures/influx/`` per query
  shape (the ``// forewarn:<kind>`` comment that opens every query the store sends);
- :class:`VictoriaBridge`: evaluates the three query shapes :mod:`core.store.flux` builds over
  what a VictoriaMetrics server stored (read through its export API), so the contract suite can
  run the InfluxDB store end to end. It does what the Flux text says for these shapes only; it
  is not a Flux engine, and real Flux semantics are only checked by reading the queries.
"""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only a type here: importable without tests/ on sys.path
    from tests.servers.victoria import VictoriaMetrics

__all__ = [
    "FIXTURES",
    "Column",
    "InfluxQueryServer",
    "VictoriaBridge",
    "annotated_csv",
    "fixture_responder",
    "rfc3339",
]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "influx"

#: (status, content type, body) for one query text
Responder = Callable[[str], tuple[int, str, bytes]]

#: one column of an annotated-CSV table: name, datatype, part of the group key, default
Column = tuple[str, str, bool, str]


def rfc3339(epoch_s: float) -> str:
    """Epoch seconds as InfluxDB writes times in CSV (RFC 3339, UTC, trailing zeros dropped)."""
    text = datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text.rstrip("0").rstrip(".") + "Z"


def annotated_csv(tables: Sequence[tuple[Sequence[Column], Sequence[Sequence[Any]]]]) -> str:
    """Tables in annotated CSV; each table is (columns, rows) with ``result`` and ``table`` added.

    Tables that share a schema share one annotation block, as InfluxDB writes them.
    """
    chunks: list[str] = []
    previous: Sequence[Column] | None = None
    for table_id, (columns, rows) in enumerate(tables):
        if list(columns) != list(previous or []):
            if previous is not None:
                chunks.append("")
            full = [("result", "string", False, "_result"), ("table", "long", False, ""),
                    *columns]
            chunks.append("#group," + ",".join("true" if c[2] else "false" for c in full))
            chunks.append("#datatype," + ",".join(c[1] for c in full))
            chunks.append("#default," + ",".join(c[3] for c in full))
            chunks.append("," + ",".join(c[0] for c in full))
            previous = columns
        for row in rows:
            chunks.append(",," + str(table_id) + "," + ",".join(_cell(v) for v in row))
    return "\r\n".join(chunks) + "\r\n\r\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def fixture_responder(files: dict[str, str]) -> Responder:
    """Answer each query shape with a recorded file: ``{"read": "read_raw.csv", …}``."""

    def respond(query: str) -> tuple[int, str, bytes]:
        kind = _kind(query)
        if kind not in files:
            return _error(400, f"no fixture for query kind {kind!r}")
        return 200, "text/csv; charset=utf-8", (FIXTURES / files[kind]).read_bytes()

    return respond


def _kind(query: str) -> str:
    match = re.match(r"// forewarn:(\w+)", query)
    return match.group(1) if match else ""


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    # InfluxDB's error body: {"code": ..., "message": ...}
    body = json.dumps({"code": "invalid", "message": message}).encode()
    return status, "application/json; charset=utf-8", body


class InfluxQueryServer:
    """HTTP server on 127.0.0.1 answering ``POST /api/v2/query``; records the queries it got.

    With ``write_to`` (a VictoriaMetrics URL) it also passes ``POST /api/v2/write`` through to
    that server unchanged, so one store URL serves both directions.
    """

    def __init__(self, responder: Responder, write_to: str | None = None) -> None:
        self.responder = responder
        self.write_to = write_to
        self.queries: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                route = self.path.split("?")[0]
                if route == "/api/v2/write" and server.write_to:
                    status, ctype, body = _forward(server.write_to + self.path, raw, self.headers)
                elif route != "/api/v2/query":
                    status, ctype, body = _error(404, f"no route {self.path}")
                else:
                    query = json.loads(raw)["query"]
                    server.queries.append(query)
                    try:
                        status, ctype, body = server.responder(query)
                    except Exception as exc:  # the test wants to see it as a 500
                        status, ctype, body = _error(500, repr(exc))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> InfluxQueryServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _forward(url: str, body: bytes, headers: Any) -> tuple[int, str, bytes]:
    names = ("Content-Type", "Content-Encoding", "Authorization")
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={name: headers[name] for name in names if headers.get(name)},
    )
    try:
        with urllib.request.urlopen(request, timeout=30.0) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()
    except OSError as exc:
        return _error(503, f"VictoriaMetrics unreachable: {exc}")


_TIME = r"(\d{4}-\d\d-\d\dT[\d:.]+Z)"


def _epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class VictoriaBridge:
    """Answers the store's Flux query shapes from what VictoriaMetrics stored (see module doc)."""

    def __init__(self, vm: VictoriaMetrics) -> None:
        self.vm = vm

    def __call__(self, query: str) -> tuple[int, str, bytes]:
        kind = _kind(query)
        if kind == "read":
            text = self._read(query)
        elif kind == "events":
            text = self._events(query)
        elif kind == "count":
            text = self._count(query)
        elif kind == "product":
            text = self._product(query)
        else:
            return _error(400, f"VictoriaBridge does not evaluate query kind {kind!r}")
        return 200, "text/csv; charset=utf-8", text.encode()

    def _series(self, query: str, kind_filter: str) -> tuple[list[dict[str, Any]], float, float]:
        start, stop = 0.0, math.inf
        span = re.search(rf"range\(start: {_TIME}, stop: {_TIME}\)", query)
        if span:
            start, stop = _epoch(span.group(1)), _epoch(span.group(2))
        labels = [kind_filter]
        for tag in ("tenant", "device"):
            match = re.search(rf'r\.{tag} == "([^"\\]*)"', query)
            if match:
                labels.append(f'{tag}="{match.group(1)}"')
        series = self.vm.export("{" + ",".join(labels) + "}", start_s=max(0.0, start - 1))
        for item in series:
            kept = [
                (ts / 1000.0, value)
                for ts, value in zip(item["timestamps"], item["values"], strict=True)
                if start <= ts / 1000.0 < stop
            ]
            item["samples"] = kept
        return series, start, stop

    def _read(self, query: str) -> str:
        series, _, _ = self._series(query, '__name__=~"(telemetry|anomaly)_.+"')
        every = re.search(r"every: (\d+)us", query)
        every_s = int(every.group(1)) / 1e6 if every else 0.0
        tables = []
        columns: list[Column] = [
            ("_time", "dateTime:RFC3339", False, ""), ("_value", "double", False, ""),
            ("_field", "string", True, ""), ("_measurement", "string", True, ""),
        ]
        for item in series:
            if "detector" in item["metric"]:
                continue
            measurement, _, field = item["metric"]["__name__"].partition("_")
            windows: dict[float, list[float]] = defaultdict(list)
            for ts, value in item["samples"]:
                key = math.floor(ts / every_s) * every_s if every_s else ts
                windows[key].append(value)
            reduce = max if measurement == "anomaly" else (lambda v: sum(v) / len(v))
            rows = [
                (rfc3339(ts), float(reduce(values)), field, measurement)
                for ts, values in sorted(windows.items())
            ]
            if rows:
                tables.append((columns, rows))
        return annotated_csv(tables)

    def _events(self, query: str) -> str:
        series, _, _ = self._series(query, 'detector!="",__name__=~"anomaly_.+"')
        cells: dict[tuple[str, ...], dict[float, dict[str, float]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for item in series:
            metric = item["metric"]
            key = tuple(metric.get(tag, "") for tag in ("tenant", "device", "product", "detector",
                                                         "field"))
            name = metric["__name__"].partition("_")[2]
            for ts, value in item["samples"]:
                cells[key][ts][name] = value
        columns: list[Column] = [
            ("_time", "dateTime:RFC3339", False, ""), ("_measurement", "string", True, ""),
            ("tenant", "string", True, ""), ("device", "string", True, ""),
            ("product", "string", True, ""), ("detector", "string", True, ""),
            ("field", "string", True, ""), ("onset", "long", False, ""),
            ("score", "double", False, ""), ("value", "double", False, ""),
            ("time_to_limit_s", "double", False, ""),
        ]
        tables = []
        for key, by_time in sorted(cells.items()):
            rows = []
            for ts, fields in sorted(by_time.items()):
                ttl = fields.get("time_to_limit_s")
                rows.append((
                    rfc3339(ts), "anomaly", *key, int(fields.get("onset", 1)),
                    float(fields.get("score", math.nan)), float(fields.get("value", math.nan)),
                    "" if ttl is None else float(ttl),
                ))
            tables.append((columns, rows))
        return annotated_csv(tables)

    def _count(self, query: str) -> str:
        series, _, _ = self._series(query, '__name__=~"telemetry_.+"')
        times: dict[tuple[str, str], set[float]] = defaultdict(set)
        for item in series:
            key = (item["metric"].get("tenant", ""), item["metric"].get("device", ""))
            times[key].update(ts for ts, _ in item["samples"])
        columns: list[Column] = [
            ("device", "string", True, ""), ("tenant", "string", True, ""),
            ("samples", "long", False, ""),
        ]
        tables = [(columns, [(device, tenant, len(stamps))])
                  for (tenant, device), stamps in sorted(times.items())]
        return annotated_csv(tables)

    def _product(self, query: str) -> str:
        series, _, _ = self._series(query, '__name__=~"telemetry_.+"')
        products = sorted({item["metric"].get("product", "") for item in series})
        columns: list[Column] = [("_value", "string", False, "")]
        return annotated_csv([(columns, [(product,) for product in products])] if products else [])
