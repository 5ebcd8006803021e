"""The Flux queries :class:`~core.store.influx.InfluxStore` sends, built as text.

InfluxDB OSS 2.x does not take query parameters (only InfluxDB Cloud does), so values are put
into the query as escaped string literals and RFC 3339 time literals. Each query opens with a
``// forewarn:<kind>`` comment naming its shape, which makes them easy to find in InfluxDB's
query log (and lets the test server tell them apart).

>>> print(read_query("fw", "acme", "hp-1", 1700000000.0, 1700003600.0, every_s=60.0))
// forewarn:read
data = from(bucket: "fw")
  |> range(start: 2023-11-14T22:13:20.000000Z, stop: 2023-11-14T23:13:20.000000Z)
  |> filter(fn: (r) => r.tenant == "acme" and r.device == "hp-1")
values = data
  |> filter(fn: (r) => r._measurement == "telemetry")
  |> aggregateWindow(every: 60000000us, createEmpty: false, timeSrc: "_start", fn: mean)
scores = data
  |> filter(fn: (r) => r._measurement == "anomaly" and not exists r.detector)
  |> aggregateWindow(every: 60000000us, createEmpty: false, timeSrc: "_start", fn: max)
union(tables: [values, scores])
  |> keep(columns: ["_time", "_measurement", "_field", "_value"])
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "count_query", "events_query", "flux_string", "flux_time", "product_query", "read_query",
]


def flux_string(text: str) -> str:
    """A Flux string literal.

    >>> flux_string('a"b')
    '"a\\\\"b"'
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def flux_time(epoch_s: float) -> str:
    """A Flux time literal (RFC 3339, microseconds, UTC) for epoch seconds.

    >>> flux_time(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _device_filter(tenant: str, device_id: str) -> str:
    return (
        f"  |> filter(fn: (r) => r.tenant == {flux_string(tenant)}"
        f" and r.device == {flux_string(device_id)})\n"
    )


def read_query(
    bucket: str, tenant: str, device_id: str, start: float, stop: float, every_s: float = 0.0
) -> str:
    """Values and per-field scores of one device in [start, stop).

    With ``every_s`` > 0, values are averaged and scores take their maximum (an anomaly must not
    be averaged away on a chart) over windows that start at multiples of ``every_s`` since the
    epoch and are stamped with their start.
    """
    values_filter = 'r._measurement == "telemetry"'
    scores_filter = 'r._measurement == "anomaly" and not exists r.detector'
    query = (
        "// forewarn:read\n"
        f"data = from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
        + _device_filter(tenant, device_id)
    )
    if every_s <= 0:
        return (
            query
            + f"data\n  |> filter(fn: (r) => {values_filter} or ({scores_filter}))\n"
            + _KEEP
        )
    every = f"{max(1, round(every_s * 1e6))}us"
    window = f'every: {every}, createEmpty: false, timeSrc: "_start"'
    return (
        query
        + f"values = data\n  |> filter(fn: (r) => {values_filter})\n"
        f"  |> aggregateWindow({window}, fn: mean)\n"
        f"scores = data\n  |> filter(fn: (r) => {scores_filter})\n"
        f"  |> aggregateWindow({window}, fn: max)\n"
        "union(tables: [values, scores])\n" + _KEEP
    )


_KEEP = '  |> keep(columns: ["_time", "_measurement", "_field", "_value"])'


def events_query(bucket: str, tenant: str, device_id: str, start: float, stop: float) -> str:
    """Detector onsets of one device in [start, stop), one row per onset."""
    return (
        "// forewarn:events\n"
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
        + _device_filter(tenant, device_id)
        + '  |> filter(fn: (r) => r._measurement == "anomaly" and exists r.detector)\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
    )


def count_query(bucket: str, tenant: str | None = None) -> str:
    """Distinct (device, timestamp) samples per device in ``telemetry``; the caller sums them."""
    tenant_filter = "" if tenant is None else f" and r.tenant == {flux_string(tenant)}"
    return (
        "// forewarn:count\n"
        f"from(bucket: {flux_string(bucket)})\n"
        "  |> range(start: 0)\n"
        f'  |> filter(fn: (r) => r._measurement == "telemetry"{tenant_filter})\n'
        '  |> group(columns: ["tenant", "device"])\n'
        '  |> unique(column: "_time")\n'
        '  |> count(column: "_time")\n'
        '  |> rename(columns: {_time: "samples"})'
    )


def product_query(bucket: str, tenant: str, device_id: str) -> str:
    """The ``product`` tag values a device's telemetry carries (one, unless it was renamed)."""
    return (
        "// forewarn:product\n"
        'import "influxdata/influxdb/schema"\n'
        f"schema.tagValues(bucket: {flux_string(bucket)}, tag: \"product\", start: 0,"
        f" predicate: (r) => r._measurement == \"telemetry\" and r.tenant =="
        f" {flux_string(tenant)} and r.device == {flux_string(device_id)})"
    )
