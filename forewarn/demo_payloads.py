"""``forewarn demo --payload json|sparkplug``: the same simulated fleet, sent as a fleet that
speaks its own payloads would send it, and ingested through a mapping (``[[ingest.mapping]]``).

Each edge agent's native batch (``forewarn/v1/{tenant}/{device}/telemetry``) is re-sent as:

- ``json``: an array of readings ``[{"ts": …, "discharge_temp": …}, …]`` on
  ``demo/site-1/{device}/state``, through the mapping ``demo-json``;
- ``sparkplug``: Sparkplug B from one edge node ``demo-edge`` of group ``{tenant}``: an NBIRTH,
  a DBIRTH per device naming each field's alias, then a DDATA per batch whose metrics carry
  only aliases and their own timestamps, through the mapping ``demo-sparkplug``.

The core decodes them with the same :class:`~core.mapping.MappedDecoder` as ``forewarn core``,
so the summary's figures (samples ingested, cases) match the native run's.

>>> payloads = MappedPayloads("json", "acme")
>>> payloads.mapping().topic, payloads.mapping().format
('demo/+site/+device/state', 'json')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from core.decode import decode_telemetry
from core.mapping import MappingConfig

__all__ = ["PAYLOADS", "MappedPayloads"]

#: the demo's payload kinds: the native schema, or a mapped fleet
PAYLOADS = ("native", "json", "sparkplug")
_NODE = "demo-edge"
Publish = Callable[[str, bytes], None]


class MappedPayloads:
    """Re-sends native batches as ``kind`` payloads; :meth:`mapping` ingests them."""

    def __init__(self, kind: Literal["json", "sparkplug"], tenant: str,
                 product: str = "heat_pump") -> None:
        self.kind = kind
        self.tenant = tenant
        self.product = product
        self._seq = 0  # the Sparkplug node's seq, over all its messages
        self._born: set[str] = set()
        self._node_born = False

    def mapping(self) -> MappingConfig:
        """The ``[[ingest.mapping]]`` that takes what :meth:`wrap` publishes."""
        if self.kind == "json":
            return MappingConfig(name="demo-json", topic="demo/+site/+device/state",
                                 format="json", tenant=self.tenant, product=self.product,
                                 time_key="ts", time_unit="s")
        return MappingConfig(name="demo-sparkplug", topic=f"spBv1.0/{self.tenant}/#",
                             format="sparkplug", tenant=self.tenant, product=self.product)

    def wrap(self, publish: Publish) -> Publish:
        """``publish`` for an edge agent: telemetry re-sent as this kind, the rest unchanged."""

        def send(topic: str, payload: bytes) -> None:
            if not topic.endswith("/telemetry"):
                publish(topic, payload)
                return
            batch = decode_telemetry(topic, payload)
            rows = [(float(t), dict(zip(batch.fields, (float(v) for v in row), strict=True)))
                    for t, row in zip(batch.t, batch.values, strict=True)]
            if self.kind == "json":
                body = [{"ts": t, **{f: (None if v != v else v) for f, v in values.items()}}
                        for t, values in rows]
                publish(f"demo/site-1/{batch.device_id}/state", json.dumps(body).encode())
                return
            for out_topic, out in self._sparkplug(batch.device_id, batch.fields, rows):
                publish(out_topic, out)

        return send

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _sparkplug(self, device: str, fields: tuple[str, ...],
                   rows: list[tuple[float, dict[str, float]]]) -> list[tuple[str, bytes]]:
        import pysparkplug as spb

        base = f"spBv1.0/{self.tenant}"
        first_ms = round(rows[0][0] * 1000)
        out: list[tuple[str, bytes]] = []
        if not self._node_born:
            self._node_born = True
            bd_seq = spb.Metric(timestamp=None, name="bdSeq", datatype=spb.DataType.INT64,
                                value=0)
            out.append((f"{base}/NBIRTH/{_NODE}", spb.NBirth(
                timestamp=first_ms, seq=self._next_seq(), metrics=(bd_seq,)
            ).encode(include_dtypes=True)))
        if device not in self._born:
            self._born.add(device)
            # null values: the birth names the aliases; the readings come in the data
            named = tuple(spb.Metric(timestamp=None, name=f, datatype=spb.DataType.DOUBLE,
                                     alias=i, is_null=True)
                          for i, f in enumerate(fields, start=1))
            out.append((f"{base}/DBIRTH/{_NODE}/{device}", spb.DBirth(
                timestamp=first_ms, seq=self._next_seq(), metrics=named
            ).encode(include_dtypes=True)))
        metrics: list[Any] = []
        for t, values in rows:
            for i, field in enumerate(fields, start=1):
                # a missing reading stays NaN: the row (its sample) is kept, as native
                metrics.append(spb.Metric(timestamp=round(t * 1000), name=None,
                                          datatype=spb.DataType.DOUBLE, value=values[field],
                                          alias=i))
        out.append((f"{base}/DDATA/{_NODE}/{device}", spb.DData(
            timestamp=first_ms, seq=self._next_seq(), metrics=tuple(metrics)).encode()))
        return out
