"""What ``forewarn ingest test`` does: one payload through one mapping, as core would decode it.

It prints the decoded batch (tenant, device, product, and per reading its time and fields) and
returns 0, or prints the dead letter core would record (reason and what was wrong) and returns
1. It runs the same :class:`~core.mapping.MappedDecoder` as core, so what it says is what core
does.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.decode import DecodedBatch
from core.errors import DecodeError, NoTelemetry
from core.mapping import MappedDecoder
from forewarn.errors import ConfigError
from forewarn.settings import Settings
from forewarn.text import plural

__all__ = ["batch_as_json", "read_payload", "try_mapping"]


def read_payload(path: Path) -> bytes:
    """The payload file's bytes (``-``: standard input); ConfigError when unreadable."""
    if str(path) == "-":
        import sys

        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--payload {path}: {exc.strerror or exc}") from exc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _number(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (a missing reading) → null


def batch_as_json(batch: DecodedBatch) -> dict[str, Any]:
    """The decoded batch as one JSON document."""
    return {
        "tenant": batch.tenant, "device_id": batch.device_id, "product": batch.product,
        "boot_id": batch.boot_id, "seq": batch.seq, "fields": list(batch.fields),
        "readings": [{"t": float(t), "time": _iso(float(t)),
                      "values": {f: _number(float(v)) for f, v in zip(batch.fields, row,
                                                                      strict=True)}}
                     for t, row in zip(batch.t, batch.values, strict=True)],
    }


def try_mapping(settings: Settings, name: str, topic: str, payload: bytes, *,
                 as_json: bool = False, say: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.time,
                 before: Sequence[tuple[str, bytes]] = ()) -> int:
    """Decode ``payload`` on ``topic`` through the mapping ``name``; 0 decoded, 1 refused.

    ``before``: messages (topic, payload) decoded first, such as the Sparkplug births that name
    the aliases of the payload's metrics."""
    mapping = settings.ingest.named(name)
    if mapping is None:
        known = ", ".join(m.name for m in settings.ingest.mapping) or "none configured"
        raise ConfigError(f"no [[ingest.mapping]] named {name!r} (mappings: {known})")
    decoder = MappedDecoder(settings.ingest.mapping, clock=clock)
    try:
        for earlier_topic, earlier in before:
            with contextlib.suppress(NoTelemetry):
                decoder.decode(mapping, earlier_topic, earlier)
        batch = decoder.decode(mapping, topic, payload)
    except NoTelemetry as exc:
        if as_json:
            say(json.dumps({"no_telemetry": exc.detail}))
        else:
            say(f"no readings (not a dead letter): {exc.detail}")
        return 0
    except DecodeError as exc:
        if as_json:
            say(json.dumps({"dead_letter": {"reason": exc.reason, "detail": exc.detail}}))
        else:
            say(f"dead letter: {exc.reason}: {exc.detail}")
        return 1
    if as_json:
        say(json.dumps(batch_as_json(batch), indent=2))
        return 0
    say(f"mapping {mapping.name}: tenant {batch.tenant}, device {batch.device_id}, "
        f"product {batch.product}, {plural(batch.n_samples, 'reading')}, "
        f"fields {', '.join(batch.fields)}")
    for reading in batch_as_json(batch)["readings"]:
        values = "  ".join(f"{f}={'null' if v is None else format(v, 'g')}"
                           for f, v in reading["values"].items())
        say(f"  {reading['time']}  (t={reading['t']:.3f})  {values}")
    return 0
