"""Topic → mapping → :class:`~core.decode.DecodedBatch`, beside the native schema.

A message on a native topic (``forewarn/v1/…``) goes to :func:`core.decode.decode_telemetry`
unchanged; one on a mapped topic is decoded by its mapping's format, its fields scaled and
offset, and made the same batch the native path gives. Mapped readings carry no sequence
number: the batch's ``boot_id`` is ``mapped.<name>`` and its ``seq`` the first reading's time
in milliseconds, so the pipeline's duplicate filter drops a message redelivered with the same
device and time (within its window, ``[core] dedup_window`` messages per device).

:meth:`MappedDecoder.reading` is the cheap way for the commonest mapped message, one JSON
reading per message: no arrays, the topic's mapping remembered. :meth:`MappedDecoder.readings`
does the same for a whole group of messages at once (one numba scan of all their payloads,
:mod:`core.mapping.json_scan`), so the pipeline can coalesce a device's readings into one batch
(:meth:`core.pipeline.CorePipeline.process_group`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from core.decode import MAX_PAYLOAD_BYTES, DecodedBatch, decode_telemetry
from core.errors import DecodeError
from core.mapping.config import MappingConfig
from core.mapping.csv_lines import decode_csv
from core.mapping.json_format import Readings, decode_json, layout_fields, one_reading
from core.mapping.json_scan import scan_readings
from core.mapping.line_protocol import decode_line_protocol
from core.mapping.sparkplug import SparkplugState
from core.mapping.times import AUTO_MS_ABOVE
from edge.names import NAME_RE
from edge.schema import MAX_FIELDS, MAX_TIMESTAMP_S, TOPIC_ROOT

__all__ = ["GroupReading", "GroupReadings", "MappedDecoder", "MappedReading"]

_KEEP_FIELD_TUPLES = 1024
#: topics whose mapping :meth:`MappedDecoder.reading` remembers (a fleet's devices' topics)
_KEEP_TOPICS = 65_536

#: one reading of one message: tenant, device, boot, seq, product, field names, time, values
MappedReading = tuple[str, str, str, int, str, tuple[str, ...], float, list[object]]

#: :meth:`MappedDecoder.readings` of one message: its reading as :data:`MappedReading`
#: without the values (those are the message's row of :attr:`GroupReadings.values`)
GroupReading = tuple[str, str, str, int, str, tuple[str, ...], float]
_NO_VALUES = np.empty((0, MAX_FIELDS))
_UNSEEN = object()  # a topic :meth:`MappedDecoder.readings` has not looked at yet


@dataclass(frozen=True, slots=True)
class GroupReadings:
    """:meth:`MappedDecoder.readings` of a group: per message its reading or None, and the
    values, message ``i``'s in the first ``len(fields)`` columns of row ``i``."""

    found: list[GroupReading | None]
    values: NDArray[np.float64]


_FORMATS: dict[str, Callable[[MappingConfig, bytes, float], Readings]] = {
    "json": decode_json,
    "influx": decode_line_protocol,
    "csv": decode_csv,
}


class MappedDecoder:
    """Decodes native and mapped messages alike; raises DecodeError with the reason."""

    def __init__(self, mappings: Sequence[MappingConfig],
                 clock: Callable[[], float] = time.time) -> None:
        names = [m.name for m in mappings]
        if len(set(names)) != len(names):
            raise ValueError("two mappings share a name")
        self.mappings = tuple(mappings)
        self.clock = clock
        #: Sparkplug B aliases, seq numbers and deaths (format ``sparkplug``)
        self.sparkplug = SparkplugState()
        #: field tuples already checked to be names (most messages repeat their fields)
        self._valid_fields: set[tuple[str, ...]] = set()
        #: topic → (mapping, tenant, device) when :meth:`reading` may take its messages
        self._quick_topics: dict[str, tuple[MappingConfig, str, str] | None] = {}

    @property
    def subscriptions(self) -> list[str]:
        """The MQTT filters to subscribe to beside the native one (each once)."""
        return list(dict.fromkeys(m.pattern.subscription for m in self.mappings))

    def mapping_of(self, topic: str) -> tuple[MappingConfig, dict[str, str]] | None:
        """The first mapping whose topic matches, with the topic's named levels."""
        for mapping in self.mappings:
            levels = mapping.pattern.match(topic)
            if levels is not None:
                return mapping, levels
        return None

    def reading(self, topic: str, payload: bytes) -> MappedReading | None:
        """The one reading of a plain JSON message on a mapped topic, or None.

        What :meth:`__call__` gives for it, as Python values: its batch's tenant, device, boot,
        seq, product and fields, the time and the row of values (None a missing reading). It
        takes a message of a ``json`` mapping with no field list, device key, scale or offset
        and an epoch time key, holding one object whose numeric keys are the fields; None for
        anything else (an array of readings, a native topic, an odd payload), which
        :meth:`__call__` decodes or words the error of. tests/property checks the two agree.
        """
        try:
            quick = self._quick_topics[topic]
        except KeyError:
            quick = self._quick_topic(topic)
        if quick is None:
            return None
        mapping, tenant, device = quick
        found = one_reading(mapping, payload)
        if found is None:
            return None
        fields, t, values = found
        if fields not in self._valid_fields:
            if any(not NAME_RE.fullmatch(f) for f in fields):
                return None
            if len(self._valid_fields) >= _KEEP_FIELD_TUPLES:
                self._valid_fields.clear()
            self._valid_fields.add(fields)
        return (tenant, device, f"mapped.{mapping.name}", round(t * 1000.0), mapping.product,
                fields, t, values)

    def readings(self, messages: Sequence[tuple[str, bytes]]) -> GroupReadings:
        """:meth:`reading` of every message of a group at once (:mod:`core.mapping.json_scan`
        reads them side by side in one call): per message its reading, or None where
        :meth:`reading` would not take it or where the scan leaves it to the general way
        (the caller decodes those with :meth:`__call__`)."""
        found: list[GroupReading | None] = [None] * len(messages)
        quick_topics = self._quick_topics
        known = [quick_topics.get(topic, _UNSEEN) for topic, _ in messages]
        if _UNSEEN in known:  # topics not seen before (the cache was cleared, a new device)
            known = [k if k is not _UNSEEN else quick_topics[messages[i][0]]
                     if messages[i][0] in quick_topics else self._quick_topic(messages[i][0])
                     for i, k in enumerate(known)]
        payloads = [payload for _, payload in messages]
        if None in known or max(map(len, payloads)) > MAX_PAYLOAD_BYTES:
            taken = [i for i, k in enumerate(known)
                     if k is not None and len(payloads[i]) <= MAX_PAYLOAD_BYTES]
            quick = [cast(tuple[MappingConfig, str, str], known[i]) for i in taken]
            payloads = [payloads[i] for i in taken]
        else:  # the usual group: every message on a quick topic
            taken = list(range(len(messages)))
            quick = cast(list[tuple[MappingConfig, str, str]], known)  # no None, no _UNSEEN
        if not taken:
            return GroupReadings(found, _NO_VALUES)
        scan = scan_readings(payloads, single=True)
        one = scan.count == 1
        kinds: list[tuple[MappingConfig, int, NDArray[np.int64]]] = []  # positions in taken
        if len(self.mappings) == 1:  # the usual decoder: by layout alone, in numpy
            for lay in np.unique(scan.layout[one]).tolist():
                kinds.append((self.mappings[0], lay,
                              np.flatnonzero(one & (scan.layout == lay))))
        else:
            by_kind: dict[tuple[str, int], list[int]] = {}
            mappings: dict[str, MappingConfig] = {}
            for j, lay in zip(np.flatnonzero(one).tolist(), scan.layout[one].tolist(),
                              strict=True):
                mapping = quick[j][0]
                mappings[mapping.name] = mapping  # names are unique among self.mappings
                by_kind.setdefault((mapping.name, lay), []).append(j)
            kinds = [(mappings[name], lay, np.array(positions, dtype=np.int64))
                     for (name, lay), positions in by_kind.items()]
        values = np.empty((len(messages), MAX_FIELDS))
        index = np.asarray(taken, dtype=np.int64)
        for mapping, lay, positions in kinds:
            layout = layout_fields(mapping, scan.keys(lay), scan.numeric(lay))
            if layout is None:
                continue
            fields, columns, time_column = layout
            if fields not in self._valid_fields:
                if any(not NAME_RE.fullmatch(f) for f in fields):
                    continue
                if len(self._valid_fields) >= _KEEP_FIELD_TUPLES:
                    self._valid_fields.clear()
                self._valid_fields.add(fields)
            rows = scan.first_row[positions]
            t = scan.values[rows, time_column]
            if mapping.time_unit == "auto":
                t = np.where(t > AUTO_MS_ABOVE, t / 1e3, t)
            fits = (t >= 0.0) & (t <= MAX_TIMESTAMP_S)  # NaN (null) does not
            if not fits.all():
                positions, t, rows = positions[fits], t[fits], rows[fits]
            at = index[positions]
            values[at[:, None], np.arange(len(fields))] = scan.values[rows[:, None], columns]
            boot, product = f"mapped.{mapping.name}", mapping.product
            seqs = np.rint(t * 1000.0).astype(np.int64)  # round(t * 1000), half to even
            for j, i, when, seq in zip(positions.tolist(), at.tolist(), t.tolist(),
                                       seqs.tolist(), strict=True):
                _mapping, tenant, device = quick[j]
                found[i] = (tenant, device, boot, seq, product, fields, when)
        return GroupReadings(found, values)

    def _quick_topic(self, topic: str) -> tuple[MappingConfig, str, str] | None:
        """Whether :meth:`reading` may take ``topic``'s messages, and their batch's names."""
        quick: tuple[MappingConfig, str, str] | None = None
        found = None if topic.startswith(TOPIC_ROOT + "/") else self.mapping_of(topic)
        if found is not None:
            mapping, levels = found
            tenant = mapping.tenant or levels.get("tenant", "")
            device = levels.get("device") or ""
            if (mapping.format == "json" and mapping.fields is None
                    and mapping.device_key is None and not mapping.scale
                    and not mapping.offset and mapping.time_key is not None
                    and "." not in mapping.time_key and mapping.time_unit in ("auto", "s")
                    and NAME_RE.fullmatch(tenant) and NAME_RE.fullmatch(device)):
                quick = (mapping, tenant, device)
        if len(self._quick_topics) >= _KEEP_TOPICS:  # bounded: a flood of distinct topics
            self._quick_topics.clear()
        self._quick_topics[topic] = quick
        return quick

    def __call__(self, topic: str, payload: bytes, properties: object | None = None
                 ) -> DecodedBatch:
        if topic.startswith(TOPIC_ROOT + "/") or not self.mappings:
            return decode_telemetry(topic, payload, properties)
        found = self.mapping_of(topic)
        if found is None:
            raise DecodeError("bad_topic", f"no mapping for topic {topic[:200]}")
        return self.decode(found[0], topic, payload, found[1])

    def decode(self, mapping: MappingConfig, topic: str, payload: bytes,
               levels: dict[str, str] | None = None) -> DecodedBatch:
        """One message through ``mapping`` (``levels``: the topic's named wildcards)."""
        if levels is None:
            levels = mapping.pattern.match(topic)
            if levels is None:
                raise DecodeError("mapping_mismatch", f"mapping {mapping.name}: topic "
                                  f"{topic[:200]!r} does not match {mapping.topic!r}")
        tenant = mapping.tenant or levels.get("tenant", "")
        if not NAME_RE.fullmatch(tenant):
            raise DecodeError("mapping_mismatch", f"mapping {mapping.name}: tenant "
                              f"{tenant[:64]!r} is not a name")
        if mapping.format == "sparkplug":
            from_payload, fields, t, values = self.sparkplug.decode(mapping, topic, payload,
                                                                    self.clock())
        else:
            from_payload, fields, t, values = _FORMATS[mapping.format](mapping, payload,
                                                                       self.clock())
        device = levels.get("device") or from_payload or ""
        if not NAME_RE.fullmatch(device):
            raise DecodeError("mapping_mismatch", f"mapping {mapping.name}: device id "
                              f"{device[:64]!r} is not a name")
        if fields not in self._valid_fields:
            bad = next((f for f in fields if not NAME_RE.fullmatch(f)), None)
            if bad is not None:
                raise DecodeError("mapping_mismatch", f"mapping {mapping.name}: key "
                                  f"{bad[:64]!r} is not a field name (rename it)")
            if len(self._valid_fields) >= _KEEP_FIELD_TUPLES:  # bounded: a fleet of oddities
                self._valid_fields.clear()
            self._valid_fields.add(fields)
        if mapping.scale or mapping.offset:
            for j, field in enumerate(fields):
                scale = mapping.scale.get(field)
                if scale is not None:
                    values[:, j] *= scale
                offset = mapping.offset.get(field)
                if offset is not None:
                    values[:, j] += offset
        return DecodedBatch(tenant, device, f"mapped.{mapping.name}",
                            round(float(t.min()) * 1000.0), mapping.product, None,
                            fields, t, values)
