"""Payload → :class:`DecodedBatch` (the batch's header and numpy arrays), or a DecodeError.

>>> payload = (b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],'
...            b'"t":[1.0],"values":[[2.0]]}')
>>> batch = decode_telemetry("forewarn/v1/acme/hp-1/telemetry", payload)
>>> batch.tenant, batch.device_id, batch.values.tolist()
('acme', 'hp-1', [[2.0]])
>>> decode_telemetry("forewarn/v1/acme/hp-2/telemetry", b'{"v": 2}')
Traceback (most recent call last):
...
core.errors.DecodeError: invalid: ...

Two decoders, one result. :class:`~edge.schema.TelemetryBatch` (pydantic) is the schema of
record: it decides what is valid and words the errors. In front of it runs a fast path for the
plainly valid payload, the usual one: msgspec checks the document's structure and types, the
header's constraints are checked here, and :mod:`core.json_numbers` reads ``t`` and ``values``
straight into arrays. Whatever the fast path is not certain about goes to pydantic, so the two
agree on everything (``tests/property/test_decode_fast_path.py`` checks that they do); the
fast path only saves the Python float per number that made decoding the slowest part of ingest
(``benchmarks/ingest_throughput.py``, ``decode/*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from core.errors import DecodeError
from core.json_numbers import FAILED, nesting_depth, parse_number_list, parse_number_rows
from edge.names import NAME_RE
from edge.problems import problems
from edge.schema import (
    MAX_FIELDS,
    MAX_SAMPLES_PER_BATCH,
    MAX_TIMESTAMP_S,
    PayloadError,
    TelemetryBatch,
    TopicError,
    decode_payload,
    parse_topic,
)

__all__ = ["MAX_NESTING", "MAX_PAYLOAD_BYTES", "DecodedBatch", "decode_fast", "decode_telemetry"]

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
#: arrays and objects nested deeper than this are refused as ``too_deep`` (a telemetry
#: document nests 3 deep: ``{"values": [[...]]}``); msgspec's and pydantic's parsers recurse
#: per level, and ~1000 levels in 4 KiB raised RecursionError out of ingest
MAX_NESTING = 8


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A valid batch: the tenant its topic names, its header, and its samples as arrays.

    ``t`` is (n,) epoch seconds, ``values`` (n, len(fields)) float64 with NaN for a missing
    reading (``null``).
    """

    tenant: str
    device_id: str
    boot_id: str
    seq: int
    product: str
    firmware: str | None
    fields: tuple[str, ...]
    t: NDArray[np.float64]
    values: NDArray[np.float64]

    @classmethod
    def of(cls, tenant: str, batch: TelemetryBatch) -> DecodedBatch:
        """The arrays of an already validated :class:`TelemetryBatch`."""
        return cls(tenant, batch.device_id, batch.boot_id, batch.seq, batch.product,
                   batch.firmware, tuple(batch.fields), np.asarray(batch.t, dtype=np.float64),
                   np.asarray(batch.values, dtype=np.float64).reshape(len(batch.t), -1))

    @property
    def n_samples(self) -> int:
        """How many timestamps (rows) the batch holds."""
        return int(self.t.shape[0])


def decode_telemetry(topic: str, payload: bytes, properties: object | None = None) -> DecodedBatch:
    """Validate one telemetry message; raise :class:`DecodeError` with a counter label otherwise.

    ``properties`` are the message's MQTT 5 properties, when there are any: their content type
    says whether the edge agent compressed the payload (without them the first byte tells).
    """
    try:
        parts = parse_topic(topic)
    except TopicError as exc:
        raise DecodeError("bad_topic", str(exc)) from exc
    if parts.kind != "telemetry":
        raise DecodeError("bad_topic", f"not a telemetry topic: {topic}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        payload = decode_payload(payload, properties)
    except PayloadError as exc:
        raise DecodeError("bad_encoding", str(exc)) from exc
    try:
        decoded = _decode_fast(parts.tenant, payload)
    except RecursionError as exc:  # msgspec recurses per level of what it skips
        raise DecodeError("too_deep", f"JSON nested more than {MAX_NESTING} levels deep") \
            from exc
    if decoded is None:
        # what the fast path accepts nests 3 deep; anything else is measured before pydantic
        # (one pass, ~5 ns a byte: only on this slower path)
        if nesting_depth(np.frombuffer(payload, dtype=np.uint8), MAX_NESTING) > MAX_NESTING:
            raise DecodeError("too_deep", f"JSON nested more than {MAX_NESTING} levels deep")
        try:
            batch = TelemetryBatch.model_validate_json(payload)
        except ValidationError as exc:
            raise DecodeError("invalid", problems(exc, root="payload")[0]) from exc
        decoded = DecodedBatch.of(parts.tenant, batch)
    if decoded.device_id != parts.device_id:
        raise DecodeError(
            "device_mismatch",
            f"payload says device {decoded.device_id!r} on the topic of {parts.device_id!r}",
        )
    return decoded


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    """The JSON shape of :class:`TelemetryBatch`, numbers left raw for :mod:`core.json_numbers`."""

    device_id: str
    boot_id: str
    seq: int
    fields: list[str]
    t: msgspec.Raw
    values: msgspec.Raw
    v: int = 1
    product: str = "generic"
    firmware: str | None = None


_WIRE = msgspec.json.Decoder(_Wire)


def decode_fast(tenant: str, payload: bytes) -> DecodedBatch | None:
    """The batch when ``payload`` is plainly valid; None: let :class:`TelemetryBatch` judge it.

    Never accepts what :class:`TelemetryBatch` refuses, and gives the same values when both
    accept (``tests/property/test_decode_fast_path.py``).

    >>> decode_fast("acme", b'{"device_id":"d","boot_id":"b","seq":1,"fields":["a","b"],'
    ...             b'"t":[5,6],"values":[[1.5,null],[2,3e2]]}').values.tolist()
    [[1.5, nan], [2.0, 300.0]]
    >>> decode_fast("acme", b'{"device_id":"d","boot_id":"b","seq":1,"fields":["a"],'
    ...             b'"t":[5],"values":[["1.5"]]}') is None  # pydantic decides on strings
    True
    >>> decode_fast("acme", b'{"t":' + b'[' * 5000 + b']' * 5000 + b'}') is None  # too deep
    True
    """
    try:
        return _decode_fast(tenant, payload)
    except RecursionError:
        return None


def _decode_fast(tenant: str, payload: bytes) -> DecodedBatch | None:
    """:func:`decode_fast`, raising :class:`RecursionError` for a payload nested too deep
    for msgspec (it recurses per level, also through the raw ``t`` and ``values``)."""
    try:
        wire = _WIRE.decode(payload)
    except (msgspec.DecodeError, ValueError):
        return None
    fields = wire.fields
    k = len(fields)
    if not (wire.v == 1 and 0 <= wire.seq < 2**63 and 1 <= k <= MAX_FIELDS
            and (wire.firmware is None or len(wire.firmware) <= 64)
            and NAME_RE.fullmatch(wire.device_id) and NAME_RE.fullmatch(wire.boot_id)
            and NAME_RE.fullmatch(wire.product) and len(set(fields)) == k
            and all(NAME_RE.fullmatch(name) for name in fields)):
        return None
    raw_t = np.frombuffer(wire.t, dtype=np.uint8)
    t = np.empty(min(raw_t.shape[0] // 2 + 1, MAX_SAMPLES_PER_BATCH + 1))
    n = parse_number_list(raw_t, t)
    if n == FAILED or not 1 <= n <= MAX_SAMPLES_PER_BATCH:
        return None
    t = t[:n]
    if not (t.min() >= 0.0 and t.max() <= MAX_TIMESTAMP_S):  # the parser gives no NaN
        return None
    values = np.empty((n, k))
    if parse_number_rows(np.frombuffer(wire.values, dtype=np.uint8), values) == FAILED:
        return None
    return DecodedBatch(tenant, wire.device_id, wire.boot_id, wire.seq, wire.product,
                        wire.firmware, tuple(fields), t, values)
