"""Core's processing of one message, with no broker: decode → dedup → detect → store.

The MQTT service (:mod:`core.service`), the simulator's evaluation and the NAB runner all push
batches through this one class, so they run exactly the same code.

>>> from core.detect import RobustZ
>>> from core.store.embedded import EmbeddedStore
>>> pipe = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
>>> payload = (b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],'
...            b'"t":[1.0,2.0],"values":[[2.0],[null]]}')
>>> scored = pipe.process_payload("forewarn/v1/acme/hp-1/telemetry", payload)
>>> scored.n_samples, pipe.stats.samples_ingested
(2, 2)
>>> pipe.process_payload("forewarn/v1/acme/hp-1/telemetry", payload) is None  # redelivered
True
>>> pipe.process_payload("forewarn/v1/acme/hp-1/telemetry", b"not json") is None
True
>>> pipe.stats.duplicate_batches, dict(pipe.dead_letters.counts)
(1, {'bad_encoding': 1})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from core.dead_letter import DeadLetters
from core.decode import DecodedBatch, decode_telemetry
from core.dedup import DuplicateFilter
from core.detect.ensemble import Finding
from core.detect.peer import Peer
from core.detect.series import SeriesRegistry
from core.errors import DecodeError, NoTelemetry
from core.events import EVENT_THRESHOLD, DetectorEvent, ScoredBatch
from core.limits import ProductLimits
from core.store.base import StoreError, TimeSeriesStore
from edge.schema import MAX_FIELDS, MAX_SAMPLES_PER_BATCH, TelemetryBatch

if TYPE_CHECKING:
    from core.mapping.decoder import GroupReadings

__all__ = ["FORECAST_HORIZON_S", "BatchDetector", "CorePipeline", "CoreStats", "DeviceTenant",
           "LevelDetector", "PeerLabels", "PipelineState", "default_peer_labels"]

_log = logging.getLogger(__name__)

#: the tenant a device belongs to (None: not known, so not checked); the shell's registry
DeviceTenant = Callable[[str], str | None]
#: a group's (topic, payload) → per message its one reading or None, and the readings' values
#: (:meth:`core.mapping.MappedDecoder.readings`)
GroupReadingDecoder = Callable[[Sequence[tuple[str, bytes]]], "GroupReadings"]


@dataclass(slots=True)
class _Run:
    """A device's readings coalesced in :meth:`CorePipeline.process_group`, in order."""

    tenant: str
    device_id: str
    boot_id: str
    product: str
    fields: tuple[str, ...]
    t: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    #: the readings' messages, by their index in the group (their values' rows)
    messages: list[int] = field(default_factory=list)


#: (tenant, device_id, product, firmware) → (peer group, cohort) of the device: the shell's
#: cohorts (registry and status messages); the pipeline appends each field's name
PeerLabels = Callable[[str, str, str, str | None], tuple[str, str]]


def default_peer_labels(tenant: str, device_id: str, product: str, firmware: str | None
                        ) -> tuple[str, str]:
    """Peers without a registry: every device of a product; its cohort adds the firmware.

    >>> default_peer_labels("acme", "hp-1", "heat_pump", "2.6")
    ('acme/heat_pump', 'acme/heat_pump/2.6')
    """
    return f"{tenant}/{product}", f"{tenant}/{product}/{firmware or '-'}"


class BatchDetector(Protocol):
    """What the pipeline needs of a detector: score then learn a block of many series."""

    @property
    def name(self) -> str:
        """Detector name, for explanations."""
        ...

    def update(self, slots: NDArray[np.int64], x: NDArray[np.float64],
               t: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """Scores in [0, 1] for ``x`` (ticks × len(slots)) sampled at times ``t``."""
        ...


@runtime_checkable
class LevelDetector(Protocol):
    """A detector that also gives a continuous level and explained onsets (the Ensemble).

    The pipeline stores the level as the batch's scores (rules hold it for a duration) and
    turns the findings into :class:`DetectorEvent` s.
    """

    def last_level(self) -> NDArray[np.float64] | None:
        """Level in [0, 1] of every sample and field of the last update (None: no level)."""
        ...

    def last_findings(self) -> tuple[Finding, ...]:
        """Explained onsets of the last update."""
        ...

    def rebaseline(self, slots: NDArray[np.int64]) -> None:
        """Re-learn these series' baselines (after a firmware update)."""
        ...


@dataclass(slots=True)
class CoreStats:
    """Counters of what the pipeline did."""

    messages: int = 0
    batches_ingested: int = 0
    samples_ingested: int = 0
    duplicate_batches: int = 0
    events: int = 0
    #: series forgotten because their device used more than ``max_series_per_device``
    evicted_series: int = 0
    #: boots the duplicate filter forgot because a device used more than ``max_boots``
    evicted_boots: int = 0
    #: messages understood that hold no readings (Sparkplug deaths), not dead letters
    no_telemetry: int = 0
    #: onsets of the peer detector (device, cohort and drift), among ``events``
    peer_events: int = 0


class CorePipeline:
    """Turns telemetry messages into stored, scored batches with detector events.

    With a :class:`LevelDetector` (the :class:`~core.detect.Ensemble`) a batch's scores are
    the detector's continuous level (high for as long as an anomaly lasts) and its events the
    detector's explained onsets; a device's new firmware version re-anchors its baselines.
    With a plain detector the scores are what it returns, and ``event_threshold`` makes the
    events: a field whose score rises to at least this emits one :class:`DetectorEvent`
    (onset only; the next one needs the score to fall below it first).
    ``limits`` (product limits, ``config/limits.yaml``) go to a detector with a ``range``
    (the Ensemble's out-of-range detector) when a device's fields are first seen.

    A message is dead-lettered (counted in ``dead_letters``, persisted when it has a store)
    when it does not decode, when its topic names another tenant than ``device_tenant`` says
    the device belongs to (``tenant_mismatch``), when a timestamp lies more than
    ``future_horizon_s`` after ``clock()`` (``future_timestamp``; None: no horizon, for
    replays of simulated time), and when decoding or scoring it raises anything at all
    (``crash``): one bad message costs that message, never the ingest loop. Only a
    :class:`~core.store.base.StoreError` propagates: the data is good, the store is not.

    With a ``peer`` detector (:mod:`core.detect.peer`) every series is also compared with its
    peers: ``peer_labels`` names each device's peer group and cohort, and a device score
    reaching ``event_threshold`` emits a ``peer`` event, a cohort score a ``peer_cohort`` one,
    a drift score (its batch or release drifting together, :mod:`core.detect.peer_drift`) a
    ``peer_drift`` one (onsets, like a plain detector's).
    """

    def __init__(
        self,
        detector: BatchDetector,
        store: TimeSeriesStore,
        event_threshold: float = EVENT_THRESHOLD,
        dedup_window: int = 4096,
        limits: ProductLimits | None = None,
        dead_letters: DeadLetters | None = None,
        device_tenant: DeviceTenant | None = None,
        future_horizon_s: float | None = None,
        clock: Callable[[], float] = time.time,
        max_series_per_device: int = 256,
        max_boots_per_device: int = 8,
        decoder: Callable[[str, bytes], DecodedBatch] = decode_telemetry,
        peer: Peer | None = None,
        peer_labels: PeerLabels = default_peer_labels,
    ) -> None:
        self.detector = detector
        self.peer = peer
        self.peer_labels = peer_labels
        #: per device, the labels and fields its peer slots were last given
        self._peer_known: dict[tuple[str, str], tuple[tuple[str, str], tuple[str, ...]]] = {}
        self._peer_above = np.zeros((1024, 3), dtype=np.bool_)
        #: per peer slot, its (tenant, device, field), and each device's product: where the
        #: judgments of a shared peer detector go (:meth:`judge_peers`)
        self._peer_series: dict[int, tuple[str, str, str]] = {}
        self._peer_product: dict[tuple[str, str], str] = {}
        #: onsets of devices whose product is not known yet (judged right after a restore):
        #: handed on with the device's next batch
        self._peer_held: dict[tuple[str, str], list[DetectorEvent]] = {}
        #: topic, payload → batch: the native schema, or the mappings beside it (core.mapping)
        self.decoder = decoder
        #: the decoder's quick way to a group's one-reading mapped messages, which
        #: :meth:`process_group` coalesces
        self._readings: GroupReadingDecoder | None = getattr(decoder, "readings", None)
        # checked once: a runtime Protocol isinstance costs ~10 µs, per batch it showed
        self._level_detector = isinstance(detector, LevelDetector)
        self.limits = limits
        #: per device, the field tuples whose product limits the detector already has
        self._limited: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self.store = store
        self.event_threshold = event_threshold
        if max_series_per_device < MAX_FIELDS:
            raise ValueError(f"max_series_per_device must hold one batch's {MAX_FIELDS} fields")
        self.series = SeriesRegistry(max_per_device=max_series_per_device)
        self.dedup = DuplicateFilter(dedup_window, max_boots=max_boots_per_device)
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.device_tenant = device_tenant
        self.future_horizon_s = future_horizon_s
        self.clock = clock
        self.stats = CoreStats()
        self._above = np.zeros(1024, dtype=np.bool_)
        #: firmware each device last reported: an update may move baselines, not a fault
        self._firmware: dict[tuple[str, str], str] = {}

    def process_payload(self, topic: str, payload: bytes) -> ScoredBatch | None:
        """Decode and process one MQTT message; bad ones are dead-lettered, duplicates dropped."""
        self.stats.messages += 1
        decoded = self._decoded(topic, payload)
        return None if decoded is None else self._processed(decoded, topic, payload)

    def _decoded(self, topic: str, payload: bytes) -> DecodedBatch | None:
        """The message's batch, or None after counting it (no telemetry) or dead-lettering it."""
        try:
            decoded = self.decoder(topic, payload)
        except NoTelemetry:
            self.stats.no_telemetry += 1
            return None
        except DecodeError as exc:
            self.dead_letters.record(exc.reason, topic, exc.detail, payload)
            return None
        except Exception as exc:  # a decoder bug must cost one message, not the ingest loop
            _log.exception("decoding a message of %s failed", topic[:200])
            self.dead_letters.record("crash", topic, f"decoding: {exc!r}", payload)
            return None
        refused = self._refusal(decoded)
        if refused is not None:
            self.dead_letters.record(refused[0], topic, refused[1], payload)
            return None
        return decoded

    def _processed(self, decoded: DecodedBatch, topic: str, payload: bytes
                   ) -> ScoredBatch | None:
        """:meth:`process_decoded`, a detector bug dead-lettering the message."""
        try:
            return self.process_decoded(decoded)
        except StoreError:
            raise
        except Exception as exc:  # a detector bug on one message: skip it, keep ingesting
            _log.exception("processing a message of %s failed", topic[:200])
            self.dead_letters.record("crash", topic, f"processing: {exc!r}", payload)
            return None

    def process_group(self, messages: Sequence[tuple[str, bytes]]
                      ) -> list[tuple[ScoredBatch, str, bytes]]:
        """Process messages as :meth:`process_payload` would one by one, each device's readings
        coalesced: the scored batches, each with the topic and payload of its last message.

        The decoder reads the group's one-reading mapped messages at once
        (:meth:`MappedDecoder.readings <core.mapping.MappedDecoder.readings>`); each such
        reading joins its device's run of readings, which passes the duplicate filter in
        order (:meth:`DuplicateFilter.new_many <core.dedup.DuplicateFilter.new_many>`) and is
        scored as one batch: the detectors update a block of ticks exactly as they do tick by
        tick, so what is stored, scored and raised is what message by message gives
        (tests/property/test_coalesced_ingest.py), for a fraction of the per-message cost. A
        run ends at a reading that changes the device's fields or goes back in time, at any
        other message of the device, and at the end of the group. Dead letters, refusals and
        duplicates are the same, message by message (the refusals and dead letters in the
        same order; a run's duplicates counted when it is flushed).
        """
        readings = self._readings
        out: list[tuple[ScoredBatch, str, bytes]] = []
        if readings is None:
            for topic, payload in messages:
                scored = self.process_payload(topic, payload)
                if scored is not None:
                    out.append((scored, topic, payload))
            return out
        try:
            group = readings(messages)
            found_all, values = group.found, group.values
        except Exception:  # a bug of the quick way: the general one decides
            _log.exception("reading a group of %d messages failed", len(messages))
            found_all, values = [None] * len(messages), np.empty((0, MAX_FIELDS))
        runs: dict[tuple[str, str], _Run] = {}
        stats = self.stats
        checked = self.device_tenant is not None or self.future_horizon_s is not None
        for i, found in enumerate(found_all):
            stats.messages += 1
            if found is None:
                topic, payload = messages[i]
                decoded = self._decoded(topic, payload)
                if decoded is None:
                    continue
                run = runs.pop((decoded.tenant, decoded.device_id), None)
                if run is not None:  # the device's readings before this message come first
                    self._flush(run, messages, values, out)
                scored = self._processed(decoded, topic, payload)
                if scored is not None:
                    out.append((scored, topic, payload))
                continue
            tenant, device, boot, seq, product, fields, t = found
            if checked:
                refused = self._refused(tenant, device, t)
                if refused is not None:
                    topic, payload = messages[i]
                    self.dead_letters.record(refused[0], topic, refused[1], payload)
                    continue
            key = (tenant, device)
            run = runs.get(key)
            if run is not None and (run.fields != fields or t < run.t[-1] or run.boot_id != boot
                                    or run.product != product
                                    or len(run.t) >= MAX_SAMPLES_PER_BATCH):
                del runs[key]
                self._flush(run, messages, values, out)
                run = None
            if run is None:
                run = runs[key] = _Run(tenant, device, boot, product, fields)
            run.t.append(t)
            run.seqs.append(seq)
            run.messages.append(i)
        for run in runs.values():
            self._flush(run, messages, values, out)
        self.stats.evicted_boots = self.dedup.evicted
        return out

    def _flush(self, run: _Run, messages: Sequence[tuple[str, bytes]],
               values: NDArray[np.float64], out: list[tuple[ScoredBatch, str, bytes]]) -> None:
        """Drop a device's run of readings' duplicates, then score and store the rest as one
        batch (the duplicate filter sees the device's readings in their order)."""
        new = self.dedup.new_many(run.tenant, run.device_id, run.boot_id, run.seqs)
        index, t = run.messages, run.t
        if new is not None:
            self.stats.duplicate_batches += len(new) - sum(new)
            index = [i for i, keep in zip(index, new, strict=True) if keep]
            t = [s for s, keep in zip(t, new, strict=True) if keep]
            if not index:
                return
        batch = DecodedBatch(run.tenant, run.device_id, run.boot_id, run.seqs[0], run.product,
                             None, run.fields, np.array(t, dtype=np.float64),
                             values[index, : len(run.fields)])
        try:
            scored = self._scored(batch)
        except StoreError:
            raise
        except Exception as exc:  # a detector bug: the run's messages, as one by one would
            _log.exception("processing readings of %s failed", run.device_id)
            for i in index:
                self.dead_letters.record("crash", messages[i][0], f"processing: {exc!r}",
                                         messages[i][1])
            return
        out.append((scored, *messages[index[-1]]))

    def process_checked(self, topic: str, payload: bytes, decode: Callable[[], DecodedBatch]
                        ) -> tuple[ScoredBatch | None, tuple[str, str] | None]:
        """:meth:`process_payload` for a caller that answers with the reason (HTTP ingest):
        ``decode`` gives the batch; returns (the scored batch, None when a duplicate), or
        (None, the dead letter's reason and detail) after recording it under ``topic``."""
        self.stats.messages += 1
        try:
            decoded = decode()
        except DecodeError as exc:
            self.dead_letters.record(exc.reason, topic, exc.detail, payload)
            return None, (exc.reason, exc.detail)
        except Exception as exc:  # a decoder bug must cost one message, not the service
            _log.exception("decoding a message of %s failed", topic[:200])
            self.dead_letters.record("crash", topic, f"decoding: {exc!r}", payload)
            return None, ("crash", "decoding failed")
        refused = self._refusal(decoded)
        if refused is not None:
            self.dead_letters.record(refused[0], topic, refused[1], payload)
            return None, refused
        try:
            return self.process_decoded(decoded), None
        except StoreError:
            raise
        except Exception as exc:
            _log.exception("processing a message of %s failed", topic[:200])
            self.dead_letters.record("crash", topic, f"processing: {exc!r}", payload)
            return None, ("crash", "processing failed")

    def _refusal(self, batch: DecodedBatch) -> tuple[str, str] | None:
        """(reason, detail) when a well-formed batch must still not be used."""
        if self.device_tenant is None and self.future_horizon_s is None:
            return None
        return self._refused(batch.tenant, batch.device_id, float(batch.t.max()))

    def _refused(self, tenant: str, device_id: str, latest: float) -> tuple[str, str] | None:
        """:meth:`_refusal` of a batch of ``device_id`` whose latest time is ``latest``."""
        if self.device_tenant is not None:
            owner = self.device_tenant(device_id)
            if owner is not None and owner != tenant:
                return ("tenant_mismatch", f"device {device_id!r} belongs to tenant "
                        f"{owner!r}, not {tenant!r}")
        if self.future_horizon_s is not None:
            now = self.clock()
            if latest > now + self.future_horizon_s:
                return ("future_timestamp", f"t = {latest:.0f} is {latest - now:.0f} s in the "
                        f"future (horizon {self.future_horizon_s:.0f} s)")
        return None

    def process(self, tenant: str, batch: TelemetryBatch) -> ScoredBatch | None:
        """Dedup, detect and store one valid batch; None when it was seen before."""
        return self.process_decoded(DecodedBatch.of(tenant, batch))

    def process_decoded(self, batch: DecodedBatch) -> ScoredBatch | None:
        """:meth:`process` for a batch already in arrays (what the decoder gives)."""
        if not self.dedup.is_new(batch.tenant, batch.device_id, batch.boot_id, batch.seq):
            self.stats.duplicate_batches += 1
            return None
        self.stats.evicted_boots = self.dedup.evicted
        return self._scored(batch)

    def _scored(self, batch: DecodedBatch) -> ScoredBatch:
        """Detect and store a batch past the duplicate filter."""
        tenant = batch.tenant
        fields = batch.fields
        t, values = batch.t, batch.values
        if t.shape[0] > 1 and not (t[1:] >= t[:-1]).all():  # a late sample inside the batch
            order = np.argsort(t, kind="stable")
            t, values = t[order], values[order]
        slots = self.series.slots(tenant, batch.device_id, fields)
        if self.series.reused.size:
            self._forget(tenant, batch.device_id, self.series.reused)
        detector = self.detector
        if self.limits is not None and fields not in self._limited.get(
                (tenant, batch.device_id), ()):
            self._set_limits(tenant, batch, fields, slots)
        if batch.firmware is not None:
            before = self._firmware.setdefault((tenant, batch.device_id), batch.firmware)
            if before != batch.firmware:
                self._firmware[(tenant, batch.device_id)] = batch.firmware
                if self._level_detector:
                    cast(LevelDetector, detector).rebaseline(slots)
        scores = detector.update(slots, values, t)
        if self._level_detector:
            leveled = cast(LevelDetector, detector)
            level = leveled.last_level()
            if level is not None:
                scores = level
            events = self._explained(tenant, batch, fields, t, leveled.last_findings())
        else:
            events = self._onsets(tenant, batch, fields, slots, t, values, scores)
        if self.peer is not None:
            events += self._peer_events(batch, fields, slots, t, values)
        scored = ScoredBatch(tenant, batch.device_id, batch.product, fields, t, values, scores,
                             events, firmware=batch.firmware)
        self.store.write(scored)
        self.stats.batches_ingested += 1
        self.stats.samples_ingested += scored.n_samples
        self.stats.events += len(events)
        return scored

    def _peer_events(self, batch: DecodedBatch, fields: tuple[str, ...],
                     slots: NDArray[np.int64], t: NDArray[np.float64],
                     values: NDArray[np.float64]) -> tuple[DetectorEvent, ...]:
        """Compare the batch with the device's peers; onsets of its peer scores as events."""
        assert self.peer is not None
        key = (batch.tenant, batch.device_id)
        labels = self.peer_labels(batch.tenant, batch.device_id, batch.product, batch.firmware)
        if self._peer_known.get(key) != (labels, fields):
            self._peer_known[key] = (labels, fields)
            base = f"{batch.tenant}/{batch.product}"
            pools = _pool_parts(labels)
            self.peer.assign(slots, [f"{labels[0]}/{f}" for f in fields],
                             [f"{labels[1]}/{f}" for f in fields],
                             refs=[f"{base}/{f}" for f in fields],
                             pools=[[f"{base}/{p}/{f}" for p in pools] for f in fields])
            self._peer_product[key] = batch.product
            for slot, name in zip(slots.tolist(), fields, strict=True):
                self._peer_series[slot] = (batch.tenant, batch.device_id, name)
        device = self.peer.update(slots, values, t)
        cohort = self.peer.last_cohort_scores()
        drift = self.peer.last_drift_scores()
        self._grow_peer_above(int(slots.max()) + 1)
        if self.peer.share is not None:
            # shared over partitions: a bucket is judged when the last partition's members
            # are in, maybe after this batch or long after this device's last one, so the
            # onsets are those of the judgments, each handed on once, whenever it is made
            # (the held scores of ``device`` only repeat judgments already handed on)
            mine = self._peer_held.pop(key, [])
            self.stats.peer_events += len(mine)
            for device_key, onsets in self._peer_judgments().items():
                if device_key == key:
                    mine += onsets
                else:
                    self._write_peer_events(onsets)
            return tuple(mine)
        if (device.max() < self.event_threshold and cohort.max() < self.event_threshold
                and drift.max() < self.event_threshold):
            # the common case, a device like its peers: no onset, nothing above (a third of
            # the peer detector's cost per batch went into the general path below)
            self._peer_above[slots] = False
            return ()
        events: list[DetectorEvent] = []
        for col, ((name, what), scores) in enumerate(zip(_PEER_SCORES, (device, cohort, drift),
                                                         strict=True)):
            high = scores >= self.event_threshold
            before = np.vstack((self._peer_above[slots, col][None, :], high[:-1]))
            self._peer_above[slots, col] = high[-1]
            for i, j in zip(*np.nonzero(high & ~before), strict=True):
                events.append(DetectorEvent(
                    tenant=batch.tenant, device_id=batch.device_id, product=batch.product,
                    field=fields[j], detector=name, ts=float(t[i]), score=float(scores[i, j]),
                    value=float(values[i, j]),
                    explanation=f"{fields[j]} is {what} (score {scores[i, j]:.2f})"))
        self.stats.peer_events += len(events)
        return tuple(events)

    def judge_peers(self) -> int:
        """Judge the shared peer detector's waiting buckets as far as the other partitions'
        members are in (the scale-out engine calls this when summaries arrive); their onsets
        go to the store as event-only batches (no samples), like a batch's. Returns the
        number of events written."""
        if self.peer is None or self.peer.share is None:
            return 0
        self.peer.judge_pending()
        written = 0
        for events in self._peer_judgments().values():
            written += self._write_peer_events(events)
        return written

    def _write_peer_events(self, events: list[DetectorEvent]) -> int:
        first = events[0]
        fields = tuple(dict.fromkeys(e.field for e in events))
        empty = np.empty((0, len(fields)))
        self.store.write(ScoredBatch(first.tenant, first.device_id, first.product, fields,
                                     np.empty(0), empty, empty.copy(), tuple(events)))
        self.stats.events += len(events)
        return len(events)

    def _grow_peer_above(self, need: int) -> None:
        if need > self._peer_above.shape[0]:
            grown = np.zeros((max(need, 2 * self._peer_above.shape[0]), 3), dtype=np.bool_)
            grown[: self._peer_above.shape[0]] = self._peer_above
            self._peer_above = grown

    def _peer_judgments(self) -> dict[tuple[str, str], list[DetectorEvent]]:
        """Onsets of the shared peer detector's judgments since the last call, per device
        whose product is known (the others are held for their next batch), dated when the
        bucket fell due, with the bucket's mean as the value."""
        assert self.peer is not None
        out: dict[tuple[str, str], list[DetectorEvent]] = {}
        for bucket, slots, vals, device, cohort, drift in self.peer.take_judged():
            self._grow_peer_above(int(slots.max()) + 1)
            ts = self.peer.due_at(bucket)
            for col, ((name, what), scores) in enumerate(zip(_PEER_SCORES,
                                                             (device, cohort, drift),
                                                             strict=True)):
                high = scores >= self.event_threshold
                onset = high & ~self._peer_above[slots, col]
                self._peer_above[slots, col] = high
                for j in np.flatnonzero(onset).tolist():
                    slot = int(slots[j])
                    known = self._peer_series.get(slot)
                    if known is None:
                        known = self._series_of(slot)
                    if known is None:
                        continue  # forgotten since (evicted): nobody to tell
                    tenant, device_id, field_name = known
                    product = self._peer_product.get((tenant, device_id))
                    event = DetectorEvent(
                        tenant=tenant, device_id=device_id, product=product or "",
                        field=field_name, detector=name, ts=ts, score=float(scores[j]),
                        value=float(vals[j]),
                        explanation=f"{field_name} is {what} (score {scores[j]:.2f})")
                    if product is None:
                        self._peer_held.setdefault((tenant, device_id), []).append(event)
                    else:
                        out.setdefault((tenant, device_id), []).append(event)
        self.stats.peer_events += sum(len(v) for v in out.values())
        return out

    def _series_of(self, slot: int) -> tuple[str, str, str] | None:
        """(tenant, device, field) of a slot, from the registry (after a restore)."""
        for key, at in self.series.items():
            self._peer_series.setdefault(at, key)
        return self._peer_series.get(slot)

    def _forget(self, tenant: str, device_id: str, slots: NDArray[np.int64]) -> None:
        """Slots of evicted series now hold new ones: start their state afresh."""
        self.stats.evicted_series = self.series.evicted
        forget = getattr(self.detector, "forget", None)
        if callable(forget):
            forget(slots)
        if self.peer is not None:
            self.peer.forget(slots)
            self._peer_known.pop((tenant, device_id), None)
            self._peer_above[slots[slots < self._peer_above.shape[0]]] = False
            for slot in slots.tolist():
                self._peer_series.pop(slot, None)
        self._above[slots[slots < self._above.shape[0]]] = False
        self._limited.pop((tenant, device_id), None)  # the new series need their limits

    def _set_limits(self, tenant: str, batch: DecodedBatch, fields: tuple[str, ...],
                    slots: NDArray[np.int64]) -> None:
        """Hand the product's limits of these fields to the detector (once per device)."""
        assert self.limits is not None
        limited = self._limited.setdefault((tenant, batch.device_id), set())
        if len(limited) >= 16:  # a device that keeps changing its fields: bounded memory
            limited.clear()
        limited.add(fields)
        limits = self.limits.arrays(batch.product, fields)
        out_of_range = getattr(self.detector, "range", None)
        if limits is not None and out_of_range is not None:
            out_of_range.set_limits(slots, *limits)

    def _explained(
        self, tenant: str, batch: DecodedBatch, fields: tuple[str, ...],
        t: NDArray[np.float64], findings: tuple[Finding, ...],
    ) -> tuple[DetectorEvent, ...]:
        return tuple(DetectorEvent(
            tenant=tenant, device_id=batch.device_id, product=batch.product,
            field=fields[f.column], detector=f.detector, ts=float(t[f.row]), score=f.score,
            value=f.value, explanation=f"{fields[f.column]}: {f.explanation}",
            time_to_limit_s=_forecast(f.time_to_limit),
        ) for f in findings)

    def _onsets(
        self,
        tenant: str,
        batch: DecodedBatch,
        fields: tuple[str, ...],
        slots: NDArray[np.int64],
        t: NDArray[np.float64],
        values: NDArray[np.float64],
        scores: NDArray[np.float64],
    ) -> tuple[DetectorEvent, ...]:
        if int(slots.max()) >= self._above.shape[0]:
            grown = np.zeros(max(int(slots.max()) + 1, 2 * self._above.shape[0]), dtype=np.bool_)
            grown[: self._above.shape[0]] = self._above
            self._above = grown
        high = scores >= self.event_threshold
        before = np.vstack((self._above[slots][None, :], high[:-1]))
        self._above[slots] = high[-1]
        events: list[DetectorEvent] = []
        for i, j in zip(*np.nonzero(high & ~before), strict=True):
            events.append(DetectorEvent(
                tenant=tenant, device_id=batch.device_id, product=batch.product,
                field=fields[j], detector=self.detector.name, ts=float(t[i]),
                score=float(scores[i, j]), value=float(values[i, j]),
                explanation=f"{fields[j]} = {values[i, j]:.4g} is far from its usual level "
                f"(score {scores[i, j]:.2f})",
            ))
        return tuple(events)

    def state(self) -> PipelineState:
        """Everything the pipeline learned (for a partition's snapshot; copies, not views)."""
        detector_state = getattr(self.detector, "state", None)
        detector = dict(detector_state()) if callable(detector_state) else {}
        if self.peer is not None:  # beside the detector's arrays, under their own prefix
            detector.update({f"{_PEER}{k}": v for k, v in self.peer.state().items()})
        return PipelineState(
            series=self.series.items(),
            dedup=self.dedup.state(),
            above=self._above.copy(),
            detector=detector,
            firmware=dict(self._firmware),
        )

    def load_state(self, state: PipelineState) -> None:
        """Continue from what :meth:`state` returned (same detector configuration)."""
        self.series.load(state.series)
        self.dedup.load(state.dedup)
        self._above = state.above.copy()
        self._firmware = dict(state.firmware)
        own = {k: v for k, v in state.detector.items() if not k.startswith(_PEER)}
        peer = {k[len(_PEER):]: v for k, v in state.detector.items() if k.startswith(_PEER)}
        load = getattr(self.detector, "load_state", None)
        if own and callable(load):
            load(own)
        if self.peer is not None and peer:
            self.peer.load_state(peer)
        self._peer_known.clear()  # labels are handed in again with each device's next batch
        self._peer_series.clear()


_PEER = "peer."
#: the peer detector's scores, in the columns of ``_peer_above``: event name, what it says
_PEER_SCORES = (
    ("peer", "unlike its peers' at the same time"),
    ("peer_cohort", "moved with its cohort away from the rest of its peers"),
    ("peer_drift", "drifting with its batch (or release) away from the rest of the product's"),
)


def _pool_parts(labels: tuple[str, str]) -> list[str]:
    """The pools of a device's drift score: the parts its cohort adds to its peer group
    (``firmware=2.6``, ``batch=B17``), which span groups (models, regions).

    >>> _pool_parts(("acme/hp/model=M2", "acme/hp/model=M2/firmware=2.6/batch=B17"))
    ['firmware=2.6', 'batch=B17']
    >>> _pool_parts(("acme/heat_pump", "acme/heat_pump/2.6"))
    ['2.6']
    """
    group, cohort = labels
    rest = cohort[len(group):] if cohort.startswith(group) else cohort
    return [part for part in rest.split("/") if part]

#: a time to a limit further out than this is no forecast (a nearly flat trend divides by ~0)
FORECAST_HORIZON_S = 90 * 86_400.0


def _forecast(time_to_limit: float | None) -> float | None:
    """The trend detector's time to a limit, or None when it is no usable forecast."""
    if time_to_limit is None or not 0.0 <= time_to_limit <= FORECAST_HORIZON_S:
        return None
    return time_to_limit


@dataclass(slots=True)
class PipelineState:
    """A pipeline's learned state: series slots, dedup memory, onset flags, detector arrays.

    >>> from core.detect import RobustZ
    >>> from core.store.embedded import EmbeddedStore
    >>> pipe = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
    >>> _ = pipe.process_payload("forewarn/v1/acme/hp-1/telemetry", (
    ...     b'{"v":1,"device_id":"hp-1","boot_id":"b","seq":0,"fields":["a"],'
    ...     b'"t":[1.0],"values":[[2.0]]}'))
    >>> again = CorePipeline(RobustZ(), EmbeddedStore(":memory:"))
    >>> again.load_state(pipe.state())
    >>> again.series.items(), again.dedup.is_new("acme", "hp-1", "b", 0)
    ([(('acme', 'hp-1', 'a'), 0)], False)
    """

    series: list[tuple[tuple[str, str, str], int]]
    dedup: dict[tuple[str, str, str], tuple[int, list[int]]]
    above: NDArray[np.bool_]
    detector: dict[str, NDArray[Any]]
    firmware: dict[tuple[str, str], str] = field(default_factory=dict)
