"""Mappings: ingest devices that publish their own topics and payloads, without new firmware.

A mapping (``[[ingest.mapping]]`` in the configuration, :class:`MappingConfig`) names a topic
filter with named wildcards (``acme/+site/+device/state``), the payload's format, where the
tenant, device, time and fields are, and the product. :class:`MappedDecoder` turns a message on
a mapped topic into the same :class:`~core.decode.DecodedBatch` the native path
(``forewarn/v1/{tenant}/{device}/telemetry``) produces, so dedup, detection, store and rules do
not know the difference; a message that does not fit its mapping raises
:class:`~core.errors.DecodeError` and is dead-lettered with the reason.

One module per format: :mod:`core.mapping.json_format` (one reading or an array of readings
per message), :mod:`core.mapping.line_protocol` (InfluxDB line protocol, e.g. from Telegraf),
:mod:`core.mapping.csv_lines` and :mod:`core.mapping.sparkplug` (Sparkplug B births, data, deaths).

>>> mapping = MappingConfig(name="acme-json", topic="acme/+site/+device/state",
...                         tenant="acme", product="heat_pump", time_key="ts")
>>> decoder = MappedDecoder([mapping])
>>> batch = decoder("acme/s1/hp-9/state", b'{"ts": 1700000000, "temp": 21.5, "on": true}')
>>> batch.tenant, batch.device_id, batch.fields, batch.t.tolist(), batch.values.tolist()
('acme', 'hp-9', ('temp',), [1700000000.0], [[21.5]])
>>> decoder("acme/s1/hp-9/state", b'{"temp": 21.5}')
Traceback (most recent call last):
...
core.errors.DecodeError: mapping_mismatch: mapping acme-json: no time key 'ts' in the reading
"""

from __future__ import annotations

from core.mapping.config import IngestConfig, MappingConfig
from core.mapping.decoder import MappedDecoder
from core.mapping.topic import TopicPattern

__all__ = ["IngestConfig", "MappedDecoder", "MappingConfig", "TopicPattern"]
