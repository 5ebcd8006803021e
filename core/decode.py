"""Payload → :class:`~edge.schema.TelemetryBatch`, or a :class:`~core.errors.DecodeError`.

>>> payload = (b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],'
...            b'"t":[1.0],"values":[[2.0]]}')
>>> batch = decode_telemetry("forewarn/v1/acme/hp-1/telemetry", payload)
>>> batch.tenant, batch.batch.device_id
('acme', 'hp-1')
>>> decode_telemetry("forewarn/v1/acme/hp-2/telemetry", b'{"v": 2}')
Traceback (most recent call last):
...
core.errors.DecodeError: invalid: ...
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from core.errors import DecodeError
from edge.schema import (
    PayloadError,
    TelemetryBatch,
    TopicError,
    decode_payload,
    parse_topic,
)

__all__ = ["MAX_PAYLOAD_BYTES", "DecodedBatch", "decode_telemetry"]

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A valid batch and the tenant its topic names."""

    tenant: str
    batch: TelemetryBatch


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
        batch = TelemetryBatch.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise DecodeError("invalid", f"{where}: {first.get('msg', 'invalid')}") from exc
    if batch.device_id != parts.device_id:
        raise DecodeError(
            "device_mismatch",
            f"payload says device {batch.device_id!r} on the topic of {parts.device_id!r}",
        )
    return DecodedBatch(parts.tenant, batch)

