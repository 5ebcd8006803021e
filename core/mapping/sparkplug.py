"""Sparkplug B (``spBv1.0/{group}/{type}/{node}[/{device}]``), decoded with ``pysparkplug``.

A Sparkplug edge node announces its metrics once in a birth (NBIRTH for the node, DBIRTH per
device: name, alias, type, current value) and then sends only aliases in its data (NDATA,
DDATA). :class:`SparkplugState` is what a host application must remember for that: the
alias → name table of each node and device, the node's last ``seq`` (0–255, one counter over
all of the node's messages) to count gaps, and which devices said they died.

A birth or data message gives readings: every numeric metric (booleans, strings and ``bdSeq``
are not readings), its name the field (``rename`` first; ``/`` becomes ``.`` and any other
character not allowed in a field name ``_``), its time the metric's timestamp or else the
payload's (milliseconds). The device is the topic's device id, or the node id for NBIRTH/NDATA.
A death (NDEATH, DDEATH) carries no readings: it marks the device (every device of the node)
offline and raises :class:`~core.errors.NoTelemetry`, which the pipeline counts and does not
dead-letter.

>>> import pysparkplug as spb
>>> from core.mapping.config import MappingConfig
>>> m = MappingConfig(name="plant", topic="spBv1.0/+tenant/#", format="sparkplug")
>>> state = SparkplugState()
>>> temp = spb.Metric(timestamp=None, name="Inputs/temp", datatype=spb.DataType.DOUBLE,
...                   value=21.5, alias=1)
>>> birth = spb.DBirth(timestamp=1_700_000_000_000, seq=1, metrics=(temp,)).encode()
>>> data = spb.DData(timestamp=1_700_000_001_000, seq=2, metrics=(spb.Metric(
...     timestamp=None, name=None, datatype=spb.DataType.DOUBLE, value=22.0, alias=1),)).encode()
>>> _ = state.decode(m, "spBv1.0/acme/DBIRTH/edge-1/hp-9", birth, 0.0)
>>> device, fields, t, values = state.decode(m, "spBv1.0/acme/DDATA/edge-1/hp-9", data, 0.0)
>>> device, fields, t.tolist(), values.tolist()
('hp-9', ('Inputs.temp',), [1700000001.0], [[22.0]])
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from core.decode import MAX_PAYLOAD_BYTES
from core.errors import DecodeError, NoTelemetry
from core.mapping.config import MappingConfig
from core.mapping.json_format import Readings
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH

__all__ = ["SPARKPLUG_NAMESPACE", "SparkplugState", "field_of_metric"]

#: the first topic level of every Sparkplug B message
SPARKPLUG_NAMESPACE = "spBv1.0"
_MISMATCH = "mapping_mismatch"
_KINDS = ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH", "NCMD", "DCMD", "STATE")
_NOT_READINGS = frozenset({"bdSeq"})
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
#: alias tables and seq counters kept at most (a namespace of many nodes stays bounded)
_KEEP = 65536
#: Sparkplug FLOAT and DOUBLE: the protobuf field holding the value
_FLOAT_FIELDS = {9: "float_value", 10: "double_value"}


def field_of_metric(mapping: MappingConfig, name: str) -> str:
    """The field name of a Sparkplug metric: renamed, else ``/`` → ``.``, other odd chars → ``_``.

    >>> m = MappingConfig(name="p", topic="spBv1.0/acme/#", tenant="acme", format="sparkplug",
    ...                   rename={"Inputs/Flow rate": "flow"})
    >>> field_of_metric(m, "Inputs/Flow rate"), field_of_metric(m, "Outputs/Pump speed")
    ('flow', 'Outputs.Pump_speed')
    """
    if name in mapping.rename:
        return mapping.rename[name]
    return _BAD_CHARS.sub("_", name.replace("/", "."))


@dataclass
class SparkplugState:
    """What a host application remembers of the namespace, and what it counted."""

    #: (group, node, device or "") → alias → metric name, from the last birth
    aliases: dict[tuple[str, str, str], dict[int, str]] = field(default_factory=dict)
    #: (group, node, device or "") → metric name → Sparkplug datatype, from the last birth
    dtypes: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)
    #: (group, node) → the node's last seq
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    #: devices (group, node, device or "" for the node) whose last word was a death
    offline: set[tuple[str, str, str]] = field(default_factory=set)
    births: int = 0
    deaths: int = 0
    #: messages whose seq was not the node's last + 1 (mod 256): some were lost between
    seq_gaps: int = 0
    #: messages lost in those gaps
    seq_missing: int = 0

    def decode(self, mapping: MappingConfig, topic: str, payload: bytes,
               arrival: float) -> Readings:
        """The readings of one Sparkplug message; NoTelemetry for a death, DecodeError when
        it does not fit (a malformed payload, an alias no birth named)."""
        del arrival  # Sparkplug payloads always carry their time
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
        levels = topic.split("/")
        if (len(levels) not in (4, 5) or levels[0] != SPARKPLUG_NAMESPACE
                or levels[2] not in _KINDS):
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {topic[:200]!r} is not "
                              "spBv1.0/{group}/{type}/{node}[/{device}]")
        group, kind, node = levels[1], levels[2], levels[3]
        device = levels[4] if len(levels) == 5 else ""
        if kind.startswith("D") != bool(device):
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {kind} "
                              f"{'needs' if kind.startswith('D') else 'takes no'} device level")
        if kind in ("NCMD", "DCMD", "STATE"):
            raise NoTelemetry(f"sparkplug {kind} (a command to the edge, not telemetry)")
        if kind == "DDEATH":  # on the node's seq, like its data
            raw = _parse_payload(mapping, payload)
            self._check_seq(kind, group, node, int(raw.seq) if raw.HasField("seq") else None)
        if kind in ("NDEATH", "DDEATH"):
            return self._death(kind, group, node, device)
        raw = _parse_payload(mapping, payload)
        seq = int(raw.seq) if raw.HasField("seq") else None
        self._check_seq(kind, group, node, seq)
        key = (group, node, device)
        if kind.endswith("BIRTH"):
            self.births += 1
            if len(self.aliases) >= _KEEP:
                self.aliases.clear()
                self.dtypes.clear()
            if kind == "NBIRTH":  # a node's rebirth: its devices will be born again too
                for old in [k for k in self.aliases if k[:2] == (group, node)]:
                    del self.aliases[old]
                    self.dtypes.pop(old, None)
            self.aliases[key] = {m.alias: m.name for m in raw.metrics
                                 if m.HasField("alias") and m.name}
            self.dtypes[key] = {m.name: m.datatype for m in raw.metrics if m.name}
            self.offline.discard(key)
        decoded = _Decoded(int(raw.timestamp), seq,
                           _metrics(mapping, raw, self.aliases.get(key, {}),
                                    self.dtypes.get(key, {}), "/".join(key)))
        readings = self._readings(mapping, decoded)
        return (device or node, *readings)

    def _death(self, kind: str, group: str, node: str, device: str) -> Readings:
        self.deaths += 1
        if kind == "DDEATH":
            self.offline.add((group, node, device))
            raise NoTelemetry(f"sparkplug DDEATH: device {device!r} of node {node!r} offline")
        self.offline.update(k for k in self.aliases if k[:2] == (group, node))
        self.offline.add((group, node, ""))
        self.last_seq.pop((group, node), None)  # the next NBIRTH starts the count again
        raise NoTelemetry(f"sparkplug NDEATH: node {node!r} and its devices offline")

    def _check_seq(self, kind: str, group: str, node: str, seq: int | None) -> None:
        if seq is None:
            return
        last = self.last_seq.get((group, node))
        if last is not None and kind != "NBIRTH":
            expected = (last + 1) % 256
            if seq != expected:
                self.seq_gaps += 1
                self.seq_missing += (seq - expected) % 256
        if len(self.last_seq) >= _KEEP:
            self.last_seq.clear()
        self.last_seq[(group, node)] = seq

    def _readings(self, mapping: MappingConfig, decoded: _Decoded
                  ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        wanted = set(mapping.fields) if mapping.fields is not None else None
        names: dict[str, int] = {}
        by_time: dict[int, dict[int, float]] = {}
        for metric in decoded.metrics:
            name = metric.name
            value = metric.value
            numeric = (isinstance(value, int | float) and not isinstance(value, bool)
                       and not metric.is_null)
            if (not numeric or name in _NOT_READINGS
                    or (wanted is not None and name not in wanted)):
                if mapping.unknown_keys == "dead-letter" and name not in _NOT_READINGS:
                    raise DecodeError(_MISMATCH, f"mapping {mapping.name}: metric {name!r} "
                                      "is not a wanted number (unknown_keys = \"dead-letter\")")
                continue
            number = float(value)
            if not math.isfinite(number):
                number = math.nan
            stamp = metric.timestamp if metric.timestamp is not None else decoded.timestamp
            column = names.setdefault(field_of_metric(mapping, name), len(names))
            by_time.setdefault(int(stamp), {})[column] = number
        if not names:
            raise NoTelemetry("sparkplug message without a numeric metric")
        if len(names) > MAX_FIELDS or len(by_time) > MAX_SAMPLES_PER_BATCH:
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: {len(names)} metrics at "
                              f"{len(by_time)} times (at most {MAX_FIELDS} and "
                              f"{MAX_SAMPLES_PER_BATCH})")
        stamps = sorted(by_time)
        values = np.full((len(stamps), len(names)), np.nan)
        for i, stamp in enumerate(stamps):
            for j, number in by_time[stamp].items():
                values[i, j] = number
        t = np.asarray(stamps, dtype=np.float64) / 1000.0
        if not (t.min() >= 0.0 and t.max() < 7.3e9):  # 1970 to 2200, like every format
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: timestamp out of range")
        return tuple(names), t, values


@dataclass(frozen=True)
class _Decoded:
    timestamp: int
    seq: int | None
    metrics: tuple[Any, ...]


def _spb() -> Any:
    """pysparkplug, imported on first use: it is installed apart (``pip install --no-deps
    pysparkplug``, see docs/connect.md), so core runs without it until a Sparkplug mapping
    sees a message."""
    try:
        import pysparkplug
        import pysparkplug._protobuf
    except ImportError as exc:
        raise DecodeError("sparkplug_unavailable", f"pysparkplug is not installed ({exc}): "
                          "pip install --no-deps pysparkplug") from None
    return pysparkplug


def _parse_payload(mapping: MappingConfig, payload: bytes) -> Any:
    """The protobuf payload; DecodeError when it is none or has no timestamp."""
    spb = _spb()
    try:
        raw = spb._protobuf.Payload.FromString(payload)
    except Exception as exc:  # protobuf's DecodeError and its kin
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: not a Sparkplug B payload: "
                          f"{str(exc)[:120] or type(exc).__name__}") from None
    if not raw.HasField("timestamp"):
        raise DecodeError(_MISMATCH, f"mapping {mapping.name}: Sparkplug payload without "
                          "a timestamp")
    return raw


def _metrics(mapping: MappingConfig, raw: Any, aliases: dict[int, str],
             dtypes: dict[str, int], where: str) -> tuple[Any, ...]:
    """The payload's metrics, names and datatypes filled in from the birth."""
    for metric in raw.metrics:
        if not metric.name:
            if not metric.HasField("alias"):
                raise DecodeError(_MISMATCH, f"mapping {mapping.name}: a metric with "
                                  "neither name nor alias")
            name = aliases.get(metric.alias)
            if name is None:
                raise DecodeError(_MISMATCH, f"mapping {mapping.name}: alias {metric.alias} "
                                  f"unknown: no birth of {where} names it (the edge node "
                                  "must send a rebirth)")
            metric.name = name
        if metric.datatype == 0:  # UNKNOWN: data may leave the type to the birth
            metric.datatype = dtypes.get(metric.name, 0)
    out: list[Any] = []
    for metric in raw.metrics:
        # floats and doubles, nearly every reading, are read as they are; pysparkplug decodes
        # the rest (signed integers, booleans, strings…): 3× faster on a DDATA of doubles
        field_name = _FLOAT_FIELDS.get(metric.datatype)
        if field_name is not None and not metric.is_null and metric.HasField(field_name):
            out.append(_Metric(metric.name, getattr(metric, field_name),
                               metric.timestamp if metric.HasField("timestamp") else None,
                               False))
            continue
        try:
            out.append(_spb().Metric.from_pb(metric))
        except DecodeError:
            raise
        except Exception as exc:  # an unknown or unsupported datatype, a value of the wrong kind
            raise DecodeError(_MISMATCH, f"mapping {mapping.name}: metric not decodable: "
                              f"{str(exc)[:120] or type(exc).__name__}") from None
    return tuple(out)


class _Metric(NamedTuple):
    """A float or double metric, as :meth:`SparkplugState._readings` reads a metric."""

    name: str
    value: float
    timestamp: int | None
    is_null: bool
