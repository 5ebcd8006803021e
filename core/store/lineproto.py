"""InfluxDB line protocol for whole scored batches, built from the arrays in one pass.

influxdb-client's ``Point`` builds one object per line and formats it field by field; a batch
already holds its samples as a (samples × fields) array, so this module formats a row template
over the columns instead (:func:`map` over column lists runs in C). ``benchmarks/store_write.py``
measures both.

A batch becomes, per sample (``t`` in epoch milliseconds, non-finite values left out)::

    telemetry,device=hp-1,product=heat_pump,tenant=acme a=7.1,b=61.0 1700000000000
    anomaly,device=hp-1,product=heat_pump,tenant=acme a=0.1,b=0.02 1700000000000

and per detector event, one line in ``anomaly`` with two more tags (tags sorted by key)::

    anomaly,detector=robust_z,device=…,field=b,product=…,tenant=… onset=1i,score=0.93,value=88.0 …

>>> import numpy as np
>>> from core.events import ScoredBatch
>>> batch = ScoredBatch(tenant="acme", device_id="hp-1", product="heat_pump", fields=("a", "b"),
...                     t=np.array([1700000000.0, 1700000060.0]),
...                     values=np.array([[7.1, 61.0], [np.nan, 62.5]]),
...                     scores=np.array([[0.1, 0.0], [0.0, 0.75]]))
>>> print(encode_batch(batch).decode())
telemetry,device=hp-1,product=heat_pump,tenant=acme a=7.1,b=61.0 1700000000000
telemetry,device=hp-1,product=heat_pump,tenant=acme b=62.5 1700000060000
anomaly,device=hp-1,product=heat_pump,tenant=acme a=0.1,b=0.0 1700000000000
anomaly,device=hp-1,product=heat_pump,tenant=acme a=0.0,b=0.75 1700000060000
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from core.events import DetectorEvent, ScoredBatch

__all__ = [
    "ANOMALY",
    "TELEMETRY",
    "encode_batch",
    "encode_batches",
    "encode_events",
    "escape_key",
    "escape_measurement",
    "measurement_lines",
    "to_epoch_ms",
]

#: measurement holding the sensor values, one field per sensor
TELEMETRY = "telemetry"
#: measurement holding anomaly scores (one field per sensor) and detector onsets (tagged)
ANOMALY = "anomaly"

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key (commas, equals signs and spaces).

    >>> escape_key("a b=c,d")
    'a\\\\ b\\\\=c\\\\,d'
    """
    if "\n" in name or "\r" in name:
        raise ValueError(f"line protocol names cannot hold a line break: {name!r}")
    return name.translate(_KEY_ESCAPES)


def escape_measurement(name: str) -> str:
    """Escape a measurement name (commas and spaces)."""
    if "\n" in name or "\r" in name:
        raise ValueError(f"line protocol names cannot hold a line break: {name!r}")
    return name.translate(_MEASUREMENT_ESCAPES)


def _escape_string_value(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_epoch_ms(t: NDArray[np.float64]) -> NDArray[np.int64]:
    """Epoch seconds to integer epoch milliseconds (the write precision), rounded."""
    return np.rint(np.asarray(t, dtype=np.float64) * 1000.0).astype(np.int64)


def measurement_lines(
    prefix: str, fields: Sequence[str], t_ms: NDArray[np.int64], values: NDArray[np.float64]
) -> list[str]:
    """Lines ``{prefix} f1=v1,f2=v2 {t_ms}`` for every row with at least one finite value.

    ``prefix`` is the escaped measurement and tag set. Rows without a missing value take the
    fast path: one template formatted over the column lists.

    >>> measurement_lines("m", ["x", "y"], np.array([1, 2]), np.array([[1.0, np.nan], [2.0, 3.0]]))
    ['m x=1.0 1', 'm x=2.0,y=3.0 2']
    """
    values = np.asarray(values, dtype=np.float64)
    n_rows, n_cols = values.shape
    if n_rows == 0 or n_cols == 0:
        return []
    keys = [escape_key(name) for name in fields]
    finite = np.isfinite(values)
    full = finite.all(axis=1)
    # braces in names must not reach str.format
    literal = [key.replace("{", "{{").replace("}", "}}") for key in keys]
    template = (
        prefix.replace("{", "{{").replace("}", "}}")
        + " " + ",".join(f"{key}={{}}" for key in literal) + " {}"
    )
    if full.all():
        columns = values.T.tolist()
        return list(map(template.format, *columns, t_ms.tolist()))
    lines: list[str | None] = [None] * n_rows
    full_rows = np.flatnonzero(full)
    if full_rows.size:
        columns = values[full_rows].T.tolist()
        formatted = map(template.format, *columns, t_ms[full_rows].tolist())
        for row, line in zip(full_rows.tolist(), formatted, strict=True):
            lines[row] = line
    for row in np.flatnonzero(~full & finite.any(axis=1)).tolist():
        row_values = values[row].tolist()
        pairs = ",".join(
            f"{keys[col]}={row_values[col]!r}" for col in np.flatnonzero(finite[row]).tolist()
        )
        lines[row] = f"{prefix} {pairs} {int(t_ms[row])}"
    return [line for line in lines if line is not None]


def _prefix(measurement: str, batch: ScoredBatch) -> str:
    if not (batch.tenant and batch.device_id and batch.product):
        raise ValueError("tenant, device and product must not be empty (they are tags)")
    # tags sorted by key, as InfluxDB prefers them
    return (
        f"{escape_measurement(measurement)},device={escape_key(batch.device_id)}"
        f",product={escape_key(batch.product)},tenant={escape_key(batch.tenant)}"
    )


def encode_events(events: Iterable[DetectorEvent], *, explanations: bool = True) -> list[str]:
    """One ``anomaly`` line per detector onset, tagged with the detector and the field.

    ``explanations=False`` leaves the text out (stores that keep only numbers, such as
    VictoriaMetrics, would turn it into a meaningless 0).
    """
    lines = []
    for event in events:
        prefix = (
            f"{escape_measurement(ANOMALY)},detector={escape_key(event.detector)}"
            f",device={escape_key(event.device_id)},field={escape_key(event.field)}"
            f",product={escape_key(event.product)},tenant={escape_key(event.tenant)}"
        )
        pairs = ["onset=1i"]
        for key, number in (
            ("score", event.score),
            ("value", event.value),
            ("time_to_limit_s", event.time_to_limit_s),
        ):
            if number is not None and math.isfinite(number):
                pairs.append(f"{key}={float(number)!r}")
        if explanations and event.explanation:
            pairs.append("explanation=" + _escape_string_value(event.explanation))
        lines.append(f"{prefix} {','.join(pairs)} {round(event.ts * 1000.0)}")
    return lines


def encode_batch(batch: ScoredBatch, *, explanations: bool = True) -> bytes:
    """The whole batch (values, scores and detector onsets) as line protocol, ms precision."""
    return "\n".join(_batch_lines(batch, explanations=explanations)).encode()


def encode_batches(batches: Iterable[ScoredBatch], *, explanations: bool = True) -> bytes:
    """Several batches as one line-protocol body."""
    lines: list[str] = []
    for batch in batches:
        lines.extend(_batch_lines(batch, explanations=explanations))
    return "\n".join(lines).encode()


def _batch_lines(batch: ScoredBatch, *, explanations: bool) -> list[str]:
    t_ms = to_epoch_ms(batch.t)
    lines = measurement_lines(_prefix(TELEMETRY, batch), batch.fields, t_ms, batch.values)
    lines += measurement_lines(_prefix(ANOMALY, batch), batch.fields, t_ms, batch.scores)
    lines += encode_events(batch.events, explanations=explanations)
    return lines
